"""MCollective 2.12 through RabbitMQ: Debian's `mco` and `mcollectived` on their own RabbitMQ
connector (/exchange/<collective>_broadcast|_directed, replies on /temp-queue/) and drbootstrap
agents and client in compat mode with `broker_kind: rabbitmq`, on one real private RabbitMQ node."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from drbootstrap.agent.config import AgentConfig
from drbootstrap.agent.daemon import AgentServer
from drbootstrap.messaging.client import ClientConfig, RpcClient
from drbootstrap.messaging.protocols import ProtocolSettings, make_wire_protocol
from tests.support.mcollective import (
    Mcollectived,
    new_psk,
    run_mco,
    start_mcollectived,
    write_mcollective_config,
)
from tests.support.prereq import require_binary
from tests.support.rabbitmq import rabbitmq  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


@dataclass
class RabbitPeers:
    broker_url: str
    psk_file: Path
    client_config: Path
    daemon: Mcollectived
    identities: list[str]  # the drbootstrap agents'


def protocol(psk_file: Path):
    return make_wire_protocol(ProtocolSettings("mcollective", psk_file, broker_kind="rabbitmq"))


def drb_client(peers: RabbitPeers) -> RpcClient:
    config = ClientConfig(brokers=[peers.broker_url], identity="drb-test", discovery_timeout=3.0, timeout=10.0,
                          protocol="mcollective", key_file=peers.psk_file, broker_kind="rabbitmq")
    return RpcClient(config)


@pytest.fixture(scope="module")
def peers(rabbitmq) -> Iterator[RabbitPeers]:
    require_binary("mco", "mcollectived")
    work = Path(tempfile.mkdtemp(prefix="drb-mco-rabbit-"))
    suffix = secrets.token_hex(3)
    daemon = in_process = command = None
    try:
        psk = new_psk()
        common = {"broker_host": rabbitmq.host, "broker_port": rabbitmq.port, "psk": psk, "connector": "rabbitmq"}
        server_cfg = write_mcollective_config(work / "server.cfg", identity=f"legacy-{suffix}", **common)
        client_cfg = write_mcollective_config(work / "client.cfg", identity=f"mco-client-{suffix}", **common)
        psk_file = work / "psk"
        psk_file.write_text(psk)
        psk_file.chmod(0o600)
        daemon = start_mcollectived(server_cfg, f"legacy-{suffix}", connector="rabbitmq")
        in_process = AgentServer(
            AgentConfig(identity=f"drb-rabbit1-{suffix}", brokers=[rabbitmq.url], key_file=str(psk_file),
                        agents=["discovery", "rpcutil"], role="drbweb", protocol="mcollective",
                        broker_kind="rabbitmq"),
            protocol=protocol(psk_file),
        )
        in_process.start(wait=15)
        command_identity = f"drb-rabbit2-{suffix}"
        config_file = work / "drb-agent.yaml"
        config_file.write_text(yaml.safe_dump({
            "identity": command_identity, "brokers": [rabbitmq.url], "key_file": str(psk_file),
            "protocol": "mcollective", "broker_kind": "rabbitmq", "agents": ["discovery", "rpcutil"],
            "role": "drbweb",
        }))
        command = subprocess.Popen([sys.executable, "-m", "drbootstrap", "agent", "--config", str(config_file)],
                                   start_new_session=True)
        result = RabbitPeers(rabbitmq.url, psk_file, client_cfg, daemon, [in_process.identity, command_identity])
        deadline = time.monotonic() + 30
        with drb_client(result) as drb:
            while command_identity not in drb.ping(expect=[command_identity]).responded:
                assert command.poll() is None and time.monotonic() < deadline, "the agent command did not answer"
        yield result
    finally:
        if in_process is not None:
            in_process.stop()
        if command is not None and command.poll() is None:
            os.killpg(command.pid, signal.SIGTERM)
            command.wait(timeout=15)
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_mco_ping_lists_drbootstrap_agents_through_rabbitmq(peers):
    result = run_mco(peers.client_config, "ping")
    assert result.returncode == 0, result.stderr
    answered = {line.split()[0] for line in result.stdout.splitlines() if "time=" in line}
    assert set(peers.identities) | {peers.daemon.identity} <= answered


def test_mco_rpc_by_fact_and_directed_reach_drbootstrap_agents_through_rabbitmq(peers):
    result = run_mco(peers.client_config, "rpc", "rpcutil", "ping", "-F", "role=drbweb", "--dt", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Finished processing 2 / 2 hosts" in result.stdout
    direct = run_mco(peers.client_config, "rpc", "rpcutil", "ping", "-I", peers.identities[1])
    assert direct.returncode == 0, direct.stdout + direct.stderr
    assert "Finished processing 1 / 1 hosts" in direct.stdout and peers.identities[1] in direct.stdout


def test_drbootstrap_client_pings_and_calls_the_real_mcollectived_through_rabbitmq(peers):
    with drb_client(peers) as drb:
        pinged = drb.ping(expect=[peers.daemon.identity, *peers.identities])
        called = drb.call("rpcutil", "ping", targets=[peers.daemon.identity])
    assert set(pinged.responded) == {peers.daemon.identity, *peers.identities}
    [reply] = called.replies
    assert (reply.sender_id, reply.status_code) == (peers.daemon.identity, 0)
