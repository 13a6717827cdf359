"""The agent's admission of hostile requests: each one refused in one log line and counted, none
executed, and a valid request still answered (the findings of the hardening review, as cases)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.daemon import AgentServer
from drbootstrap.messaging.envelope import Frame, Request
from drbootstrap.messaging.frame_guard import OVERSIZED_HEADER
from drbootstrap.messaging.mcollective import McollectiveProtocol
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.security import HmacSigner
from tests.support.hostile_messages import (
    CATASTROPHIC_REGEX,
    deep_json_array,
    link_bomb,
    mcollective_with_envelope_bomb,
    native_request,
    resigned_native,
    rewrapped_mcollective,
)

KEY = b"0123456789abcdef0123456789abcdef"
PSK = "mcollective-psk"
REPLY_TO = "/queue/drb.mcollective.reply.attacker"


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[Frame] = []

    def send(self, frame: Frame, *, while_subscribing: bool = False) -> None:
        self.sent.append(frame)

    def close(self) -> None:
        pass


def make_server(tmp_path: Path, wire, **settings) -> AgentServer:
    (tmp_path / "key").write_bytes(KEY)
    values = {"identity": "web01", "brokers": ["stomp://127.0.0.1:1"], "key_file": str(tmp_path / "key"),
              "agents": ["discovery", "rpcutil", "reboot"], "facts_file": str(tmp_path / "none.yaml"),
              "reboot": {"command": f"touch {tmp_path / 'rebooted'}", "delay": 0}}
    values.update(settings)
    server = AgentServer(agent_config_from_dict(values), protocol=wire)
    server.transport = FakeTransport()
    return server


@pytest.fixture
def native(tmp_path):
    return make_server(tmp_path, NativeProtocol(HmacSigner(KEY)), state_dir=str(tmp_path / "state"))


def client() -> NativeProtocol:
    return NativeProtocol(HmacSigner(KEY))


def deliver(server: AgentServer, body: bytes, headers: dict | None = None) -> None:
    server._on_message(body, headers or {})
    assert server.runner.wait_idle(5)


def answers_a_valid_ping(server: AgentServer) -> bool:
    before = len(server.transport.sent)
    request = native_request("/queue/drb.mcollective.reply.operator", targets=(server.identity,))
    deliver(server, client().request_frames(request)[0].body, {})
    return len(server.transport.sent) == before + 1


def assert_one_clean_refusal(server, caplog, reason: str) -> None:
    refusals = [r for r in caplog.records if "refused a request" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in caplog.records]
    assert f"({reason})" in refusals[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records) and "\n" not in refusals[0].getMessage()
    assert server.stats.refusals.get(reason) == 1
    assert server.executed == 0


@pytest.mark.parametrize("changes", [{"created_at": float("nan")}, {"ttl": float("nan")}, {"ttl": 10**9},
                                     {"created_at": float("inf")}, {"filter": "web01"}, {"filter": {"identity": "x"}},
                                     {"targets": "web01"}, {"data": [1]}, {"request_id": {"a": 1}}])
def test_signed_requests_with_bad_values_are_one_clean_refusal(native, caplog, changes):
    caplog.set_level(logging.DEBUG, logger="drbootstrap")
    caplog.set_level(logging.WARNING, logger="drbootstrap.agent")
    body = resigned_native(client(), native_request(REPLY_TO), changes)
    with caplog.at_level(logging.WARNING):
        deliver(native, body)
    assert_one_clean_refusal(native, caplog, "invalid")
    assert answers_a_valid_ping(native)


@pytest.mark.parametrize("body", [deep_json_array(), b"\xff" * 1000, b'{"v":1}', link_bomb()])
def test_unauthenticated_garbage_is_one_clean_refusal(native, caplog, body):
    with caplog.at_level(logging.WARNING):
        deliver(native, body)
    assert_one_clean_refusal(native, caplog, "invalid")


def test_an_oversized_frame_marked_by_the_receive_path_is_refused(native, caplog):
    with caplog.at_level(logging.WARNING):
        deliver(native, b"", {OVERSIZED_HEADER: "999999"})
    assert_one_clean_refusal(native, caplog, "size")


def test_a_catastrophic_identity_regex_costs_nothing_and_selects_nobody(native):
    request = native_request(REPLY_TO, identity_filter=(CATASTROPHIC_REGEX,))
    started = time.monotonic()
    deliver(native, client().request_frames(request)[0].body)
    assert time.monotonic() - started < 1.0
    assert native.stats.filtered == 1 and not native.transport.sent


def test_filters_are_not_evaluated_for_a_caller_the_policy_allows_nothing(tmp_path, caplog):
    server = make_server(tmp_path, NativeProtocol(HmacSigner(KEY)), policy=[{"caller": "key=ops"}])
    request = native_request(REPLY_TO, identity_filter=(CATASTROPHIC_REGEX,))
    with caplog.at_level(logging.WARNING):
        deliver(server, client().request_frames(request)[0].body)
    assert_one_clean_refusal(server, caplog, "unauthorised")
    assert len(server.replay) == 0  # an unauthorised caller cannot fill the replay cache


def test_a_full_replay_cache_never_locks_callers_out(native):
    native.replay.capacity = 100
    for _ in range(300):  # requests for nobody, each remembered
        request = native_request(REPLY_TO, identity_filter=("nobody",))
        deliver(native, client().request_frames(request)[0].body)
    assert len(native.replay) == 100 and native.replay.evicted == 200
    assert answers_a_valid_ping(native)


def test_a_request_captured_before_a_restart_is_refused_after_it(tmp_path, caplog):
    first = make_server(tmp_path, NativeProtocol(HmacSigner(KEY)), state_dir=str(tmp_path / "state"))
    captured = client().request_frames(native_request(REPLY_TO, agent="reboot", action="reboot",
                                                       data={"delay": 0}, targets=("web01",)))[0].body
    deliver(first, captured)
    assert first.executed == 1
    restarted = make_server(tmp_path, NativeProtocol(HmacSigner(KEY)), state_dir=str(tmp_path / "state"))
    with caplog.at_level(logging.WARNING):
        deliver(restarted, captured)
    assert_one_clean_refusal(restarted, caplog, "replay")


def test_without_a_state_dir_requests_dated_before_the_start_are_refused(tmp_path, caplog):
    server = make_server(tmp_path, NativeProtocol(HmacSigner(KEY)))
    old = client().request_frames(native_request(REPLY_TO, created_at=time.time() - 10))[0].body
    with caplog.at_level(logging.WARNING):
        deliver(server, old)
    assert_one_clean_refusal(server, caplog, "stale")


def test_a_wedged_action_leaves_discovery_answering_and_excess_work_refused_as_busy(native):
    import threading

    release = threading.Event()
    wedged = threading.Semaphore(0)
    original = native.run

    def wedged_run(request: Request):
        if request.agent == "rpcutil":
            wedged.release()
            release.wait(10)
        return original(request)

    def send_ping() -> None:
        request = native_request("/queue/drb.mcollective.reply.operator", targets=("web01",))
        native._on_message(client().request_frames(request)[0].body, {})

    native.run = wedged_run  # type: ignore[method-assign]
    try:
        for _ in range(native.config.action_workers):
            send_ping()
        for _ in range(native.config.action_workers):
            assert wedged.acquire(timeout=5)  # every worker is now stuck in an action
        for _ in range(native.config.pending_actions + 3):
            send_ping()
        assert native.stats.refusals.get("busy") == 3
        busy = [f for f in native.transport.sent if b"busy" in f.body]
        assert len(busy) == 3
        ping = native_request("/queue/drb.mcollective.reply.operator", agent="discovery", targets=("web01",))
        before = len(native.transport.sent)
        native._on_message(client().request_frames(ping)[0].body, {})
        assert len(native.transport.sent) == before + 1
    finally:
        release.set()
        native.runner.wait_idle(10)


# -- MCollective mode: the psk covers the body only --------------------------------------------


@pytest.fixture
def mco_server(tmp_path):
    return make_server(tmp_path, McollectiveProtocol(PSK), protocol="mcollective", state_dir=str(tmp_path / "state"))


def sniffed_ping() -> bytes:
    request = native_request("/queue/mcollective.reply.client_1.1", agent="discovery", caller_id="uid=0")
    return McollectiveProtocol(PSK).request_frames(request)[0].body


@pytest.mark.parametrize("make_body", [
    lambda: link_bomb(),
    lambda: mcollective_with_envelope_bomb(sniffed_ping()),
    lambda: rewrapped_mcollective(sniffed_ping(), msgtime=float("nan")),
    lambda: rewrapped_mcollective(sniffed_ping(), ttl=10**9),
    lambda: rewrapped_mcollective(sniffed_ping(), filter="web01"),
    lambda: rewrapped_mcollective(sniffed_ping(), requestid=["x"]),
])
def test_mcollective_hostile_variants_are_one_clean_refusal(mco_server, caplog, make_body):
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        deliver(mco_server, make_body(), {"reply-to": "/queue/mcollective.reply.client_1.1"})
    assert time.monotonic() - started < 1.0
    assert_one_clean_refusal(mco_server, caplog, "invalid")


def test_mcollective_catastrophic_identity_filter_on_a_sniffed_ping_selects_nobody(mco_server):
    body = rewrapped_mcollective(sniffed_ping(), filter={"identity": [CATASTROPHIC_REGEX], "fact": [], "agent": [],
                                                          "cf_class": [], "compound": []})
    deliver(mco_server, body, {"reply-to": "/queue/mcollective.reply.client_1.1"})
    assert mco_server.stats.filtered == 1 and not mco_server.transport.sent


def test_mcollective_valid_ping_is_answered(mco_server):
    deliver(mco_server, sniffed_ping(), {"reply-to": "/queue/mcollective.reply.client_1.1"})
    assert len(mco_server.transport.sent) == 1 and mco_server.stats.replies == 1
