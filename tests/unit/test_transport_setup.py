"""The transport's handling of a connection the broker accepted but whose subscriptions it did not
confirm (tests/integration/messaging/test_subscription_faults.py drives a real broker this way)."""

from __future__ import annotations

import time

import pytest

from drbootstrap.errors import MessagingError
from drbootstrap.messaging import transport as transport_module
from drbootstrap.messaging.transport import BrokerAddress, StompTransport, TransportConfig


class Silent:
    """A broker connection that says CONNECTED and then never receipts anything."""

    made = 0

    def __init__(self, **_options):
        type(self).made += 1
        self.transport = type("T", (), {"receive": lambda self: b""})()

    def set_listener(self, _name, listener):
        self.listener = listener

    def connect(self, *_, **__):
        pass

    def subscribe(self, *_, **__):
        pass

    def disconnect(self):
        pass


@pytest.fixture
def silent(monkeypatch):
    Silent.made = 0
    monkeypatch.setattr(transport_module, "StompConnection12", Silent)
    return Silent


def transport(confirm: bool) -> StompTransport:
    config = TransportConfig([BrokerAddress("127.0.0.1", 1)], connect_timeout=0.2, backoff_initial=0.01,
                             confirm_subscriptions=confirm)
    made = StompTransport(config, lambda *_: None)
    made.subscriptions.append(("/queue/x", {}))
    return made


def test_a_client_gets_one_more_connection_past_its_deadline_then_the_error(silent):
    client = transport(confirm=True)
    with pytest.raises(MessagingError, match="no receipt for the subscriptions within 0.2 s"):
        client.connect(retry_until=time.monotonic() + 0.05)  # over before the first receipt wait ends
    assert silent.made == 2
    assert not client.connected.is_set() and client._connection is None


def test_an_agent_keeps_an_unconfirmed_connection_with_a_warning(silent, caplog):
    agent = transport(confirm=False)
    agent.connect(retry_until=time.monotonic() + 0.05)
    assert silent.made == 1 and agent.connected.is_set()
    assert "no receipt for the subscriptions within 0.2 s" in caplog.text
