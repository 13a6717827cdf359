"""RPC over a real private RabbitMQ node (rabbitmq_stomp): discovery, directed calls, reply queues
that go away with their client, the node's own credentials, and a clean stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from drbootstrap.agent.daemon import run_agents
from drbootstrap.messaging.client import ClientConfig, RpcClient
from drbootstrap.messaging.envelope import Filter
from tests.integration.messaging.conftest import new_key, node_config
from tests.support.rabbitmq import rabbitmq  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def rabbit_fleet(rabbitmq):
    work = Path(tempfile.mkdtemp(prefix="drb-rabbit-fleet-"))
    key = new_key(work)
    url = rabbitmq.url
    configs = [node_config(work, url, key, f"node{n:02d}.rabbit.test", broker_kind="rabbitmq") for n in range(4)]
    servers = []
    try:
        servers = run_agents(configs, wait=30)
        yield url, key, [server.identity for server in servers]
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def client(url: str, key: Path) -> RpcClient:
    return RpcClient(ClientConfig(brokers=[url], key_file=key, broker_kind="rabbitmq", discovery_timeout=5.0,
                                  timeout=20.0))


def test_ping_finds_every_agent_and_stops_at_the_expected_set(rabbit_fleet):
    url, key, identities = rabbit_fleet
    with client(url, key) as rpc:
        result = rpc.ping(expect=identities)
    assert sorted(result.responded) == sorted(identities)


def test_directed_call_reaches_only_its_target_and_replies(rabbit_fleet):
    url, key, identities = rabbit_fleet
    with client(url, key) as rpc:
        result = rpc.ping(Filter(identity=(identities[1],)), expect=[identities[1]])
        assert result.responded == [identities[1]]
        direct = rpc.call("rpcutil", "ping", targets=[identities[2]])
    assert [reply.sender_id for reply in direct.replies] == [identities[2]]


def test_node_files_keep_the_password_private_and_off_the_command_line(rabbitmq):
    base = rabbitmq.config.base_dir
    password = (base / "broker.password").read_text().strip()
    for name in ("broker.password", "rabbitmq.conf", "definitions.json", ".erlang.cookie"):
        assert (base / name).stat().st_mode & 0o077 == 0, name
    assert password not in (base / "definitions.json").read_text()  # a salted hash only
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert password.encode() not in cmdline
    assert password not in rabbitmq.log_path.read_text(errors="replace")


def test_the_ping_command_takes_the_broker_kind(rabbit_fleet, cli):
    url, key, identities = rabbit_fleet
    result = cli("ping", "--broker", url, "--key-file", str(key), "--broker-kind", "rabbitmq",
                 "--expect", ",".join(identities), "--json")
    assert result.exit_code == 0, result.stderr
    assert sorted(reply["sender"] for reply in json.loads(result.stdout)["replies"]) == sorted(identities)


def test_agents_answer_again_after_rabbitmq_is_killed_and_restarted(rabbitmq, rabbit_fleet):
    url, key, identities = rabbit_fleet
    rabbitmq.kill()
    rabbitmq.restart()
    ready = time.monotonic()
    answered: set[str] = set()
    while time.monotonic() - ready < 10.0 and answered != set(identities):
        try:
            with client(url, key) as rpc:
                answered |= set(rpc.ping(expect=identities).responded)
        except Exception:  # noqa: BLE001 - the client may race the node's first seconds
            time.sleep(0.2)
    assert answered == set(identities), f"still silent after 10 s: {sorted(set(identities) - answered)}"


def test_a_crashed_node_takes_its_epmd_with_it(tmp_path):
    from tests.support.rabbitmq import start_test_rabbitmq

    broker = start_test_rabbitmq(tmp_path / "crash")
    group = broker.pid
    try:
        members = _group(group)
        [beam] = [pid for pid, name in members.items() if name.startswith("beam")]
        assert "epmd" in members.values()
        os.kill(beam, signal.SIGKILL)  # the node dies as in a crash; its supervisor watches the shell
        assert broker.process is not None
        broker.process.wait(20)
        deadline = time.monotonic() + 10
        while _group(group) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _group(group) == {}
    finally:
        broker.kill()


def _group(pgid: int) -> dict[int, str]:
    """Live (not zombie) processes of process group PGID, by pid."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) == pgid and " Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]:
                found[int(pid)] = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ProcessLookupError):
            continue
    return found
