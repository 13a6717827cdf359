"""Debian's `mco` and `mcollectived` (MCollective 2.12) and drbootstrap in compat mode, both ways."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from drbootstrap.agent.config import AgentConfig
from drbootstrap.agent.daemon import AgentServer
from drbootstrap.messaging.client import ClientConfig, RpcClient
from drbootstrap.messaging.mcollective import (
    McollectiveProtocol,
    make_mcollective_protocol,
)
from tests.support.mcollective import run_mco

pytestmark = pytest.mark.integration


@dataclass
class DrbAgents:
    in_process: AgentServer
    identities: list[str]


@pytest.fixture(scope="module")
def drb_agents(mco) -> Iterator[DrbAgents]:
    """Two drbootstrap agents speaking MCollective 2.12: one in-process (its counters are read by
    the psk test), one the real `drbootstrap agent` command with `protocol: mcollective`."""
    suffix = secrets.token_hex(3)
    in_process = AgentServer(
        AgentConfig(
            identity=f"drb-compat1-{suffix}",
            brokers=[mco.broker_url],
            key_file=str(mco.psk_file),
            agents=["discovery", "rpcutil"],
            role="drbweb",
        ),
        protocol=make_mcollective_protocol(mco.psk_file),
    )
    command_identity = f"drb-compat2-{suffix}"
    config_file = mco.work / "drb-agent.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "identity": command_identity,
                "brokers": [mco.broker_url],
                "key_file": str(mco.psk_file),
                "protocol": "mcollective",
                "agents": ["discovery", "rpcutil"],
                "role": "drbweb",
            }
        )
    )
    command = None
    try:
        in_process.start(wait=15)
        command = subprocess.Popen(
            [sys.executable, "-m", "drbootstrap", "agent", "--config", str(config_file)], start_new_session=True
        )
        _wait_until_answering(mco, command_identity, command)
        yield DrbAgents(in_process, [in_process.identity, command_identity])
    finally:
        in_process.stop()
        if command is not None and command.poll() is None:
            os.killpg(command.pid, signal.SIGTERM)
            command.wait(timeout=15)


def _wait_until_answering(mco, identity: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    with client(mco) as drb:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"`drbootstrap agent` exited with {process.returncode}")
            if identity in drb.ping(expect=[identity]).responded:
                return
    raise RuntimeError(f"{identity} did not answer within 30s")


def client(mco, protocol=None) -> RpcClient:
    config = ClientConfig(brokers=[mco.broker_url], identity="drb-test", discovery_timeout=3.0, timeout=10.0)
    return RpcClient(config, protocol=protocol or make_mcollective_protocol(mco.psk_file))


def test_mco_ping_lists_drbootstrap_agents_beside_the_real_mcollectived(mco, drb_agents):
    result = run_mco(mco.client_config, "ping")
    assert result.returncode == 0, result.stderr
    answered = {line.split()[0] for line in result.stdout.splitlines() if "time=" in line}
    assert set(drb_agents.identities) | {mco.daemon.identity} <= answered


def test_mco_rpc_rpcutil_ping_gets_replies_from_drbootstrap_agents_selected_by_fact(mco, drb_agents):
    result = run_mco(mco.client_config, "rpc", "rpcutil", "ping", "-F", "role=drbweb", "--dt", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Finished processing 2 / 2 hosts" in result.stdout
    for identity in drb_agents.identities:
        assert identity in result.stdout
    assert mco.daemon.identity not in result.stdout  # role=legacy does not match the filter
    assert result.stdout.count("Timestamp:") == 2  # rpcutil's DDL output `pong`, rendered by mco


def test_drbootstrap_client_pings_and_calls_the_real_mcollectived(mco):
    with client(mco) as drb:
        pinged = drb.ping(expect=[mco.daemon.identity])
        called = drb.call("rpcutil", "ping", targets=[mco.daemon.identity])
    assert mco.daemon.identity in pinged.responded
    [reply] = called.replies
    assert (reply.sender_id, reply.status_code) == (mco.daemon.identity, 0)
    assert abs(reply.data["pong"] - time.time()) < 120


def test_drbootstrap_ping_command_in_mcollective_mode_gets_the_real_mcollectived_by_fact(mco, drb_agents, cli):
    result = cli(
        "ping", "--protocol", "mcollective", "--broker", mco.broker_url, "--key-file", str(mco.psk_file),
        "-F", "role=legacy", "--json",
    )
    assert result.exit_code == 0, result.stderr
    replies = json.loads(result.stdout)["replies"]
    assert [reply["sender"] for reply in replies] == [mco.daemon.identity]


def test_request_signed_with_a_wrong_psk_is_refused_and_never_executes(mco, drb_agents):
    target = drb_agents.in_process
    executed, refused = target.executed, target.refused
    with client(mco, protocol=McollectiveProtocol("not-the-psk-" + secrets.token_hex(4))) as forger:
        result = forger.call("rpcutil", "ping", targets=[target.identity], timeout=2.0)
    deadline = time.monotonic() + 10
    while target.refused == refused and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result.replies == []
    assert target.refused > refused
    assert target.executed == executed


def test_mco_inventory_shows_a_drbootstrap_agents_stats_agents_and_facts(mco, drb_agents):
    identity = drb_agents.identities[1]  # the `drbootstrap agent` command
    result = run_mco(mco.client_config, "inventory", identity)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Inventory for {identity}:" in result.stdout
    assert "Main Collective: mcollective" in result.stdout
    assert "Replies Sent:" in result.stdout and "Total Processor Time:" in result.stdout
    agents_section = result.stdout.split("Agents:", 1)[1].split("Data Plugins:", 1)[0].split()
    assert {"discovery", "rpcutil"} <= set(agents_section)
    assert "role => drbweb" in result.stdout
    assert f"identity => {identity}" in result.stdout


def test_mco_rpc_no_results_runs_the_action_and_no_reply_is_published(mco, drb_agents):
    target = drb_agents.in_process
    executed, replies = target.executed, target.stats.replies
    result = run_mco(mco.client_config, "rpc", "rpcutil", "ping", "--no-results", "-I", target.identity)
    assert result.returncode == 0, result.stdout + result.stderr
    deadline = time.monotonic() + 10
    while target.executed == executed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert target.executed == executed + 1
    # One receiving thread handles this node's requests in order: once an ordinary call is
    # answered, the --no-results request has been fully handled, reply or not.
    with client(mco) as drb:
        answered = drb.call("rpcutil", "ping", targets=[target.identity])
    assert answered.responded == [target.identity]
    assert target.stats.replies == replies + 1  # the ordinary call's reply only
