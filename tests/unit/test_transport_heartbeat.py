"""The transport's STOMP connection tolerates a broker's keep-alive gaps of up to 2.5 intervals
(ActiveMQ's reach two intervals under thousands of connections: tests/bench/bench_scale.py)."""

from __future__ import annotations

import pytest

from drbootstrap.errors import MessagingError
from drbootstrap.messaging import transport as transport_module
from drbootstrap.messaging.transport import BrokerAddress, StompTransport, TransportConfig


def test_the_connection_is_built_with_the_heartbeat_grace(monkeypatch):
    built = {}

    class Refusing:
        def __init__(self, **options):
            built.update(options)
            self.transport = type("T", (), {"receive": lambda self: b""})()

        def set_listener(self, *_):
            pass

        def connect(self, *_, **__):
            raise OSError("refused")

        def disconnect(self):
            pass

    monkeypatch.setattr(transport_module, "StompConnection12", Refusing)
    transport = StompTransport(TransportConfig([BrokerAddress("127.0.0.1", 1)], heartbeat_ms=30_000), lambda *_: None)
    with pytest.raises(MessagingError):
        transport.connect()
    assert built["heartbeats"] == (30_000, 30_000)
    assert built["heart_beat_receive_scale"] == transport_module.HEARTBEAT_RECEIVE_SCALE == 2.5
