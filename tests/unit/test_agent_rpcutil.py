"""rpcutil's mcollective actions (daemon_stats, agent_inventory, ...) and "no reply wanted" requests,
in native mode through the daemon's receive path with a fake transport."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.daemon import AgentServer
from drbootstrap.messaging import ruby_marshal as rm
from drbootstrap.messaging.envelope import Frame, Reply, Request, StatusCode
from drbootstrap.messaging.mcollective import McollectiveProtocol
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.ruby_marshal import Sym
from drbootstrap.messaging.security import HmacSigner

KEY = b"0123456789abcdef0123456789abcdef"


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[Frame] = []

    def send(self, frame: Frame, *, while_subscribing: bool = False) -> None:
        self.sent.append(frame)


@pytest.fixture
def server(tmp_path: Path) -> AgentServer:
    (tmp_path / "psk").write_bytes(KEY)
    (tmp_path / "facts.yaml").write_text("role: web\ncpus: 4\n")
    config = agent_config_from_dict({
        "identity": "web01", "brokers": ["stomp://127.0.0.1:1"], "key_file": str(tmp_path / "psk"),
        "facts_file": str(tmp_path / "facts.yaml"), "agents": ["discovery", "rpcutil", "reboot"],
        "password": "broker-secret",
    })
    agent = AgentServer(config, protocol=NativeProtocol(HmacSigner(KEY)))
    agent.transport = FakeTransport()
    return agent


def client_protocol() -> NativeProtocol:
    return NativeProtocol(HmacSigner(KEY))


def request(action: str, data=None, *, reply_wanted: bool = True, request_id: str = "r1") -> Request:
    return Request(request_id, "client", "", "rpcutil", action, data or {}, created_at=time.time(),
                   reply_to="/queue/drb.mcollective.reply.client", reply_wanted=reply_wanted)


def deliver(server: AgentServer, outgoing: Request) -> list[Reply]:
    """Encode as a client would, receive as the daemon does, decode whatever it published."""
    before = len(server.transport.sent)
    [frame] = client_protocol().request_frames(outgoing)
    server._on_message(frame.body, dict(frame.headers))
    assert server.runner.wait_idle(5)  # actions run on the agent's worker threads
    reader = client_protocol()
    return [reader.decode_reply(sent.body, sent.headers) for sent in server.transport.sent[before:]]


def test_daemon_stats_reports_mcollective_counters_and_process_figures(server):
    deliver(server, request("ping"))
    [reply] = deliver(server, request("daemon_stats", request_id="r2"))
    data = reply.data
    assert reply.status_code == StatusCode.OK
    assert (data["total"], data["validated"], data["passed"], data["replies"], data["unvalidated"]) == (2, 2, 2, 1, 0)
    assert data["agents"] == ["discovery", "reboot", "rpcutil"]
    assert {"utime", "stime"} <= set(data["times"]) and data["pid"] > 0 and data["threads"]
    assert data["starttime"] <= time.time() and "version" in data and "configfile" in data


def test_daemon_stats_counts_refused_requests_as_unvalidated(server):
    server._on_message(b"not an envelope", {})
    [reply] = deliver(server, request("daemon_stats"))
    assert (reply.data["total"], reply.data["unvalidated"], reply.data["validated"]) == (2, 1, 1)


def test_agent_inventory_lists_every_agent_with_mcollective_metadata_keys(server):
    [reply] = deliver(server, request("agent_inventory"))
    agents = reply.data["agents"]
    assert [entry["agent"] for entry in agents] == ["discovery", "reboot", "rpcutil"]
    assert set(agents[0]) == {"agent", "license", "timeout", "description", "name", "url", "version", "author"}


def test_inventory_has_the_keys_mco_inventory_reads(server):
    [reply] = deliver(server, request("inventory"))
    assert {"agents", "facts", "classes", "collectives", "main_collective", "data_plugins", "version"} <= set(
        reply.data
    )
    assert reply.data["facts"]["role"] == "web"


def test_collective_info_get_facts_and_get_config_item(server):
    [info] = deliver(server, request("collective_info"))
    assert info.data == {"main_collective": "mcollective", "collectives": ["mcollective"]}
    [facts] = deliver(server, request("get_facts", {"facts": "role, cpus,nosuch"}, request_id="r2"))
    assert facts.data == {"values": {"role": "web", "cpus": 4, "nosuch": None}}
    [item] = deliver(server, request("get_config_item", {"item": "identity"}, request_id="r3"))
    assert item.data == {"item": "identity", "value": "web01"}


def test_get_config_item_never_reveals_the_password_or_key_file(server):
    for index, item in enumerate(("password", "key_file")):
        [reply] = deliver(server, request("get_config_item", {"item": item}, request_id=f"r{index}"))
        assert reply.status_code == StatusCode.ABORTED
        assert "broker-secret" not in repr(reply) and "psk" not in repr(reply.data)


def test_request_wanting_no_reply_runs_the_action_and_publishes_nothing(server):
    executed = server.executed
    assert deliver(server, request("ping", reply_wanted=False)) == []
    assert server.executed == executed + 1
    assert server.stats.replies == 0 and server.stats.passed == 1


def test_native_protocol_carries_reply_wanted_and_defaults_to_true():
    protocol = client_protocol()
    for wanted in (True, False):
        [frame] = protocol.request_frames(request("ping", reply_wanted=wanted, request_id=f"w{wanted}"))
        assert client_protocol().decode_request(frame.body, frame.headers).reply_wanted is wanted


def test_mcollective_protocol_maps_process_results_to_reply_wanted():
    sender = McollectiveProtocol("s3cret")
    for wanted in (True, False):
        outgoing = request("ping", reply_wanted=wanted, request_id=f"m{wanted}")
        outgoing.reply_to = "/queue/mcollective.reply.client_1.1"
        [frame] = sender.request_frames(outgoing)
        decoded = McollectiveProtocol("s3cret").decode_request(frame.body, frame.headers)
        assert decoded.reply_wanted is wanted and "process_results" not in decoded.data


def test_mcollective_daemon_stats_reply_keys_times_by_symbol_like_ruby():
    reply = Reply("r", "web01", "rpcutil", "daemon_stats", data={"times": {"utime": 1.5}, "pid": 3})
    frame = McollectiveProtocol("s3cret").reply_frame(reply, request("daemon_stats"))
    envelope = rm.loads_raw(frame.body)
    body = rm.loads_raw(rm.raw_string(rm.get(envelope, "body")))
    data = rm.get(body, "data")
    assert Sym("utime") in rm.get(data, "times")
