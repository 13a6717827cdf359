"""The client's reply collection (expectation ends early, sliding window, duplicates) and the CLI contract."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from drbootstrap.errors import MessagingError
from drbootstrap.exit_status import ExitStatus
from drbootstrap.messaging.client import ClientConfig, RpcClient, RpcResult, discovery_wait
from drbootstrap.messaging.envelope import Reply
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.security import HmacSigner
from drbootstrap.messaging.transport import BrokerAddress

KEY = b"0123456789abcdef0123456789abcdef"


class LoopbackTransport:
    """Answers every request frame with replies from `nodes` (optionally twice), like a fleet would."""

    def __init__(self, client: RpcClient, nodes: list[str], duplicate: bool = False) -> None:
        self.client, self.nodes, self.duplicate = client, nodes, duplicate
        self.server = NativeProtocol(HmacSigner(KEY))
        self.sent = []
        self.reconnects = 0
        self.connected = threading.Event()
        self.connected.set()

    def send(self, frame) -> None:
        self.sent.append(frame)
        # Each node has its own replay cache; direct frames share one request id.
        request = NativeProtocol(HmacSigner(KEY)).decode_request(frame.body, dict(frame.headers))
        for node in self.nodes if not request.targets else [t for t in request.targets if t in self.nodes]:
            reply = self.server.reply_frame(Reply(request.request_id, node, request.agent, request.action), request)
            for _ in range(2 if self.duplicate else 1):
                threading.Thread(target=self.client._on_message, args=(reply.body, {})).start()


def client_with(nodes, **config) -> tuple[RpcClient, LoopbackTransport]:
    client = RpcClient(
        ClientConfig(brokers=["stomp://127.0.0.1:1"], **config), protocol=NativeProtocol(HmacSigner(KEY))
    )
    transport = LoopbackTransport(client, nodes)
    client.transport = transport  # type: ignore[assignment]
    return client, transport


def test_ping_with_expectation_returns_without_waiting_out_the_timeout():
    client, _ = client_with(["a", "b"], discovery_timeout=60)
    started = time.monotonic()
    result = client.ping(expect=["a", "b"])
    assert sorted(result.responded) == ["a", "b"]
    assert time.monotonic() - started < 30  # far below the 60 s timeout: it ended on the last answer


def test_ping_without_expectation_stops_after_the_quiet_window():
    client, _ = client_with(["a", "b", "c"], discovery_timeout=60, discovery_window=0.2)
    assert sorted(client.ping().responded) == ["a", "b", "c"]


def test_a_ping_with_expected_identities_waits_1_s_more_per_1000_of_them_for_the_silent():
    assert discovery_wait(2.0, 0) == 2.0
    assert discovery_wait(2.0, 5000) == pytest.approx(7.0)
    client, _ = client_with(["a"], discovery_timeout=0.2)
    started = time.monotonic()
    result = client.ping(expect=["a", *(f"silent{i}" for i in range(300))])
    assert result.responded == ["a"]
    assert 0.45 <= time.monotonic() - started < 5  # 0.2 s + 0.3 s for 300 expected


def test_duplicate_replies_are_counted_once():
    client, transport = client_with(["a"], discovery_window=0.2)
    transport.duplicate = True
    assert client.ping().responded == ["a"]


def test_call_discovers_then_addresses_batches_directly_and_reports_silent_nodes():
    client, transport = client_with(["a", "b", "c"], discovery_timeout=0.5, timeout=0.5)
    result = client.call("rpcutil", "ping", expect=["a", "b", "c", "ghost"], batch_size=2)
    assert sorted(result.responded) == ["a", "b", "c"]
    assert result.no_response == ["ghost"]
    assert result.requests_sent == 2
    assert [f.headers.get("drb_identity") for f in transport.sent[1:]] == ["a", "b", "c"]


def test_summary_counts_replies_over_everyone_asked():
    result = RpcResult("rpcutil", "ping", [Reply("r", "a", "rpcutil")], ["a", "b"], 12.4)
    assert result.summary() == "Finished processing 1 / 2 hosts in 12 ms"
    assert result.no_response == ["b"] and not result.ok


@pytest.mark.parametrize("text, expected", [
    ("stomp://h:1", BrokerAddress("h", 1, False)),
    ("stomp+ssl://h:2", BrokerAddress("h", 2, True)),
    ("h:3", BrokerAddress("h", 3, False)),
])
def test_broker_addresses_parse(text, expected):
    assert BrokerAddress.parse(text) == expected


def test_bad_broker_address_is_a_messaging_error():
    with pytest.raises(MessagingError, match="bad broker address"):
        BrokerAddress.parse("http://h:1")


def test_cli_without_a_broker_is_a_usage_error(cli):
    result = cli("ping")
    assert result.exit_code == ExitStatus.USAGE and "no broker" in result.stderr


def test_cli_without_a_key_says_every_request_must_be_signed(cli):
    result = cli("ping", "--broker", "stomp://127.0.0.1:1")
    assert result.exit_code == ExitStatus.MESSAGING and "must be signed" in result.stderr


def test_cli_with_an_unreachable_broker_says_so_in_one_line(cli, tmp_path: Path):
    (tmp_path / "psk").write_bytes(KEY)
    port = _closed_port()
    result = cli("rpc", "--broker", f"stomp://127.0.0.1:{port}", "--key-file", str(tmp_path / "psk"),
                 "--connect-timeout", "0.3", "rpcutil", "ping")
    assert result.exit_code == ExitStatus.MESSAGING
    assert result.stderr.count("\n") == 1 and "cannot connect" in result.stderr


def test_cli_bad_fact_filter_is_reported_before_connecting(cli, tmp_path: Path):
    (tmp_path / "psk").write_bytes(KEY)
    result = cli("ping", "--broker", "stomp://127.0.0.1:1", "--key-file", str(tmp_path / "psk"), "-F", "role")
    assert result.exit_code == ExitStatus.MESSAGING and "bad fact filter" in result.stderr


def test_agent_with_a_missing_config_file_is_a_spec_error(cli, tmp_path: Path):
    result = cli("agent", "--config", str(tmp_path / "nope.yaml"))
    assert result.exit_code == ExitStatus.INVALID_SPEC and "nope.yaml" in result.stderr


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
