"""Refused requests never execute: forged, unsigned, expired, future-dated, replayed, oversized, unauthorised."""

from __future__ import annotations

import json
import queue
import time
import uuid

import pytest

from drbootstrap.agent.daemon import run_agents
from drbootstrap.messaging.envelope import Frame, Request, StatusCode
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.security import HmacSigner, load_signer
from drbootstrap.messaging.transport import BrokerAddress, StompTransport, TransportConfig
from tests.integration.messaging.conftest import new_key, node_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def guarded(fleet):
    """One agent whose policy forbids reboot; its puppet.disable leaves a lockfile when it runs."""
    identity = f"guard-{fleet.suffix}"
    config = node_config(fleet.work, fleet.broker_url, fleet.key_file, identity,
                         policy=[{"agent": "reboot", "allow": False}, {"caller": "*"}],
                         reboot={"command": "touch " + str(fleet.work / "rebooted"), "delay": 0})
    servers = run_agents([config], wait=20)
    replies: queue.Queue = queue.Queue()
    sender = StompTransport(TransportConfig([BrokerAddress.parse(fleet.broker_url)]), lambda body, h: replies.put(body))
    reply_to = f"/queue/drb.mcollective.reply.attacker-{fleet.suffix}"
    sender.subscribe(reply_to)
    sender.connect(retry_until=time.monotonic() + 10)
    try:
        yield (
            servers[0],
            sender,
            reply_to,
            replies,
            fleet.work / identity / "puppet-var" / "state" / "agent_disabled.lock",
        )
    finally:
        sender.close()
        servers[0].stop()


def disable_request(reply_to: str, **overrides) -> Request:
    values = dict(request_id=uuid.uuid4().hex, sender_id="attacker", caller_id="key=psk", agent="puppet",
                  action="disable", data={"message": "pwned"}, created_at=time.time(), reply_to=reply_to)
    values.update(overrides)
    return Request(**values)


def send_and_wait_for_refusal(server, sender, frame: Frame) -> None:
    before = server.refused
    sender.send(frame)
    deadline = time.monotonic() + 10
    while server.refused == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.refused == before + 1, "the agent never saw (and refused) the message"


def direct(protocol: NativeProtocol, request: Request, target: str) -> Frame:
    request.targets = (target,)
    return protocol.request_frames(request)[0]


def forged(fleet, reply_to, target):
    return direct(NativeProtocol(HmacSigner(b"not-the-real-key-0123456789")), disable_request(reply_to), target)


def unsigned(fleet, reply_to, target):
    frame = direct(NativeProtocol(load_signer(fleet.key_file)), disable_request(reply_to), target)
    envelope = json.loads(frame.body)
    del envelope["sig"]
    return Frame(frame.destination, json.dumps(envelope).encode(), frame.headers)


def expired(fleet, reply_to, target):
    return direct(
        NativeProtocol(load_signer(fleet.key_file)), disable_request(reply_to, created_at=time.time() - 600), target
    )


def future_dated(fleet, reply_to, target):
    return direct(
        NativeProtocol(load_signer(fleet.key_file)), disable_request(reply_to, created_at=time.time() + 600), target
    )


def oversized(fleet, reply_to, target):
    request = disable_request(reply_to, data={"message": "x" * 300_000})
    return direct(NativeProtocol(load_signer(fleet.key_file)), request, target)


@pytest.mark.parametrize("make_frame", [forged, unsigned, expired, future_dated, oversized])
def test_refused_request_is_not_executed_and_not_answered(fleet, guarded, make_frame):
    server, sender, reply_to, replies, lockfile = guarded
    executed = server.executed
    send_and_wait_for_refusal(server, sender, make_frame(fleet, reply_to, server.identity))
    assert server.executed == executed
    assert not lockfile.exists()
    assert replies.empty()


def test_replayed_request_runs_once_only(fleet, guarded):
    server, sender, reply_to, replies, lockfile = guarded
    frame = direct(NativeProtocol(load_signer(fleet.key_file)), disable_request(reply_to), server.identity)
    sender.send(frame)
    replies.get(timeout=10)
    assert lockfile.exists()
    lockfile.unlink()
    executed = server.executed
    send_and_wait_for_refusal(server, sender, frame)
    assert server.executed == executed and not lockfile.exists()


def test_unauthorised_action_gets_aborted_reply_and_does_not_run(fleet, guarded):
    server, *_ = guarded
    with fleet.client() as client:
        result = client.call("reboot", "reboot", {"delay": 0}, targets=[server.identity])
    assert result.replies[0].status_code == StatusCode.ABORTED
    time.sleep(0.5)  # the reboot command would have run at once (delay 0)
    assert not (fleet.work / "rebooted").exists()


def test_agent_holding_another_key_ignores_the_fleet_and_the_client_refuses_its_replies(fleet, tmp_path):
    stranger = node_config(tmp_path, fleet.broker_url, new_key(tmp_path), f"stranger-{fleet.suffix}")
    servers = run_agents([stranger], wait=20)
    try:
        with fleet.client(discovery_timeout=1.0) as client:
            result = client.ping(expect=[stranger.identity])
        assert result.no_response == [stranger.identity]
        assert servers[0].executed == 0 and servers[0].refused >= 1
    finally:
        servers[0].stop()
