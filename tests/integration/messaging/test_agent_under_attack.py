"""A running `drbootstrap agent` (native with per-client ed25519 keys, and MCollective mode) under
every hostile variant of the hardening review, sent over the real ActiveMQ: each is refused, the
agent answers valid pings THROUGHOUT the attack, and exits within 2 s of SIGTERM while under it."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from drbootstrap.messaging.client import ClientConfig, RpcClient
from drbootstrap.messaging.envelope import Frame
from drbootstrap.messaging.mcollective import McollectiveProtocol
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.security import generate_ed25519_key, load_signer
from drbootstrap.messaging.transport import BrokerAddress, StompTransport, TransportConfig
from tests.support.hostile_messages import (
    CATASTROPHIC_REGEX,
    deep_json_array,
    link_bomb,
    mcollective_with_envelope_bomb,
    native_request,
    resigned_native,
    rewrapped_mcollective,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ATTACK_SECONDS = 6.0
PING_INTERVAL = 0.25


@dataclass
class Target:
    identity: str
    broker_url: str
    client_config: ClientConfig
    variants: dict[str, Callable[[], Frame]]
    refusable: set[str] = field(default_factory=set)  # variants counted as refusals in the stats
    expected_reasons: tuple[str, ...] = ()  # refusal kinds the stats must show


def start_agent(config_file: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "drbootstrap", "agent", "--config", str(config_file)],
                            start_new_session=True, stderr=subprocess.DEVNULL)


def wait_until_answering(target: Target, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    with RpcClient(target.client_config) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the agent exited"
            if client.ping(expect=[target.identity]).responded:
                return
    raise AssertionError("the agent never answered")


def native_target(work: Path, broker_url: str, identity: str) -> tuple[Target, Path]:
    agent_trust, client_trust = work / "agent-trusts", work / "client-trusts"
    agent_trust.mkdir()
    client_trust.mkdir()
    generate_ed25519_key(work / "ops.pem", agent_trust / "ops.pub")
    generate_ed25519_key(work / "intruder.pem", agent_trust / "intruder.pub")  # trusted, allowed nothing
    generate_ed25519_key(work / "node.pem", client_trust / "node.pub")
    config = work / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "identity": identity, "brokers": [broker_url], "key_file": str(work / "node.pem"), "key_id": "node",
        "trusted_keys_dir": str(agent_trust), "state_dir": str(work / "state"), "agents": ["discovery", "rpcutil"],
        "policy": [{"caller": "key=ops"}], "heartbeat_ms": 5000, "log_file": str(work / "agent.log"),
    }))
    ops = NativeProtocol(load_signer(work / "ops.pem"))
    intruder = NativeProtocol(load_signer(work / "intruder.pem"))
    reply_to = f"/queue/drb.mcollective.reply.attacker-{identity}"

    def signed(changes: dict) -> Callable[[], Frame]:
        return lambda: Frame(ops.broadcast_destination("rpcutil", "mcollective"),
                             resigned_native(ops, native_request(reply_to), changes))

    def raw(body: bytes) -> Callable[[], Frame]:
        return lambda: Frame(ops.broadcast_destination("rpcutil", "mcollective"), body)

    captured = ops.request_frames(native_request(reply_to, targets=(identity,)))[0]
    variants = {
        "nan created_at": signed({"created_at": float("nan")}),
        "nan ttl": signed({"ttl": float("nan")}),
        "ttl 1e9 for nobody": signed({"ttl": 10**9, "filter": {"identity": ["nobody"]}}),
        "string filter": signed({"filter": "web01"}),
        "deep json (unsigned)": raw(deep_json_array()),
        "marshal link bomb (unsigned)": raw(link_bomb()),
        "catastrophic regex, caller allowed nothing": lambda: intruder.request_frames(
            native_request(reply_to, identity_filter=(CATASTROPHIC_REGEX,)))[0],
        "catastrophic regex, allowed caller": lambda: ops.request_frames(
            native_request(reply_to, identity_filter=(CATASTROPHIC_REGEX,)))[0],
        "replay of a captured request": lambda: captured,
        "oversized frame (300 KiB)": raw(b"x" * 300_000),
        "fill the replay cache (for nobody)": lambda: ops.request_frames(
            native_request(reply_to, identity_filter=("nobody",)))[0],
    }
    client = ClientConfig(brokers=[broker_url], key_file=work / "ops.pem", trusted_keys_dir=client_trust,
                          discovery_timeout=2.0, timeout=10.0)
    refusable = set(variants) - {"catastrophic regex, allowed caller", "fill the replay cache (for nobody)"}
    reasons = ("invalid", "replay", "size", "unauthorised")
    return Target(identity, broker_url, client, variants, refusable, reasons), config


def mcollective_target(work: Path, broker_url: str, identity: str) -> tuple[Target, Path]:
    psk = secrets.token_hex(16)
    (work / "psk").write_text(psk)
    (work / "psk").chmod(0o600)
    config = work / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "identity": identity, "brokers": [broker_url], "key_file": str(work / "psk"), "protocol": "mcollective",
        "state_dir": str(work / "state"), "agents": ["discovery", "rpcutil"], "heartbeat_ms": 5000,
        "log_file": str(work / "agent.log"),
    }))
    protocol = McollectiveProtocol(psk)
    reply_to = f"/queue/mcollective.reply.attacker-{identity}_1.1"
    destination = protocol.broadcast_destination("discovery", "mcollective")

    def sniffed() -> bytes:  # what anyone on the broker sees of an operator's `mco ping`
        return protocol.request_frames(native_request(reply_to, agent="discovery", caller_id="uid=0"))[0].body

    def frame(body: Callable[[], bytes]) -> Callable[[], Frame]:
        return lambda: Frame(destination, body(), {"reply-to": reply_to})

    empty = {"fact": [], "cf_class": [], "agent": [], "compound": []}
    variants = {
        "nan msgtime": frame(lambda: rewrapped_mcollective(sniffed(), msgtime=float("nan"))),
        "ttl 1e9 for nobody": frame(lambda: rewrapped_mcollective(
            sniffed(), ttl=10**9, filter={**empty, "identity": ["nobody"]})),
        "marshal link bomb (no key)": frame(link_bomb),
        "link bomb in an unsigned envelope key": frame(lambda: mcollective_with_envelope_bomb(sniffed())),
        "string filter": frame(lambda: rewrapped_mcollective(sniffed(), filter="web01")),
        "catastrophic identity regex on a sniffed ping": frame(lambda: rewrapped_mcollective(
            sniffed(), filter={**empty, "identity": [CATASTROPHIC_REGEX]})),
        "oversized frame (300 KiB)": lambda: Frame(destination, b"x" * 300_000, {"reply-to": reply_to}),
        "fill the replay cache (sniffed ping, new ids, for nobody)": frame(lambda: rewrapped_mcollective(
            sniffed(), requestid=secrets.token_hex(16), filter={**empty, "identity": ["nobody"]})),
    }
    client = ClientConfig(brokers=[broker_url], key_file=work / "psk", protocol="mcollective",
                          discovery_timeout=2.0, timeout=10.0)
    refusable = set(variants) - {"catastrophic identity regex on a sniffed ping",
                                 "fill the replay cache (sniffed ping, new ids, for nobody)"}
    return Target(identity, broker_url, client, variants, refusable, ("invalid", "size")), config


@dataclass
class AttackResult:
    sent: dict[str, int]
    pings: int
    answered: int
    attacker_replies: int


def attack_while_pinging(target: Target, stop: threading.Event) -> tuple[threading.Thread, dict, list]:
    sent = {name: 0 for name in target.variants}
    attacker_replies: list[bytes] = []
    sender = StompTransport(TransportConfig([BrokerAddress.parse(target.broker_url)]),
                            lambda body, headers: attacker_replies.append(body), name="attacker")
    sender.connect(retry_until=time.monotonic() + 10)

    def run() -> None:
        try:
            while not stop.is_set():
                for name, make in target.variants.items():
                    sender.send(make())
                    sent[name] += 1
                time.sleep(0.01)
        finally:
            sender.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, sent, attacker_replies


@pytest.fixture(params=["native", "mcollective"])
def attacked_agent(request, activemq, tmp_path):
    url = f"stomp://{activemq.host}:{activemq.port}"
    identity = f"target-{request.param}-{secrets.token_hex(3)}"
    make = native_target if request.param == "native" else mcollective_target
    target, config = make(tmp_path, url, identity)
    process = start_agent(config)
    try:
        wait_until_answering(target, process)
        yield request.param, target, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_agent_refuses_every_hostile_variant_answers_throughout_and_exits_on_sigterm(attacked_agent, tmp_path):
    mode, target, process = attacked_agent
    stop = threading.Event()
    thread, sent, attacker_replies = attack_while_pinging(target, stop)
    pings = answered = 0
    with RpcClient(target.client_config) as client:
        ends = time.monotonic() + ATTACK_SECONDS
        while time.monotonic() < ends:
            pings += 1
            answered += bool(client.ping(expect=[target.identity]).responded)
            time.sleep(PING_INTERVAL)
        sent_before_stats = dict(sent)  # the attack goes on; count what was sent before the agent counted
        stats = client.call("rpcutil", "daemon_stats", targets=[target.identity]).replies[0].data
    refusals = stats.get("refusals", {})
    # Under attack still: SIGTERM, timed until the process is gone.
    signalled = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=10)
    exit_seconds = time.monotonic() - signalled
    stop.set()
    thread.join(10)
    refusable_sent = sum(count for name, count in sent_before_stats.items() if name in target.refusable)
    print(f"\n[{mode}] variants={len(sent)} sent={sum(sent_before_stats.values())} refusable={refusable_sent} "
          f"refused={sum(refusals.values())} {refusals} filtered={stats.get('filtered')} "
          f"pings answered {answered}/{pings} during the attack; SIGTERM exit {exit_seconds:.2f}s")
    assert answered == pings, f"{pings - answered} of {pings} pings went unanswered during the attack"
    assert not attacker_replies, "a hostile request was answered"
    assert sum(refusals.values()) >= refusable_sent * 0.9  # the last sends may still be in flight
    assert all(refusals.get(reason) for reason in target.expected_reasons), refusals
    assert exit_seconds < 2.0
    log_lines = (tmp_path / "agent.log").read_text().splitlines()
    refusal_lines = [line for line in log_lines if "refused a request" in line]
    assert not [line for line in log_lines if not line[:4].isdigit()], "a multi-line entry (traceback) in the log"
    assert len(refusal_lines) >= sum(refusals.values())  # one line per refusal, all logged
