"""Debian's `mco` and `mcollectived` (MCollective 2.12) and drbootstrap in compat mode, both ways."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from drbootstrap.agent.config import AgentConfig
from drbootstrap.agent.daemon import AgentServer
from drbootstrap.messaging.client import ClientConfig, RpcClient
from drbootstrap.messaging.mcollective import McollectiveProtocol, make_mcollective_protocol
from tests.support.mcollective import run_mco

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def drb_agents(mco) -> Iterator[list[AgentServer]]:
    """Two drbootstrap agents speaking MCollective 2.12 on the module's broker."""
    suffix = secrets.token_hex(3)
    servers = []
    try:
        for index in (1, 2):
            config = AgentConfig(
                identity=f"drb-compat{index}-{suffix}",
                brokers=[mco.broker_url],
                key_file=str(mco.psk_file),
                agents=["discovery", "rpcutil"],
                role="drbweb",
            )
            server = AgentServer(config, protocol=make_mcollective_protocol(mco.psk_file))
            servers.append(server)
            server.start(wait=15)
        yield servers
    finally:
        for server in servers:
            server.stop()


def client(mco, protocol=None) -> RpcClient:
    config = ClientConfig(brokers=[mco.broker_url], identity="drb-test", discovery_timeout=3.0, timeout=10.0)
    return RpcClient(config, protocol=protocol or make_mcollective_protocol(mco.psk_file))


def test_mco_ping_lists_drbootstrap_agents_beside_the_real_mcollectived(mco, drb_agents):
    result = run_mco(mco.client_config, "ping")
    assert result.returncode == 0, result.stderr
    answered = {line.split()[0] for line in result.stdout.splitlines() if "time=" in line}
    assert {server.identity for server in drb_agents} | {mco.daemon.identity} <= answered


def test_mco_rpc_rpcutil_ping_gets_replies_from_drbootstrap_agents_selected_by_fact(mco, drb_agents):
    result = run_mco(mco.client_config, "rpc", "rpcutil", "ping", "-F", "role=drbweb", "--dt", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Finished processing 2 / 2 hosts" in result.stdout
    for server in drb_agents:
        assert server.identity in result.stdout
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


def test_request_signed_with_a_wrong_psk_is_refused_and_never_executes(mco, drb_agents):
    target = drb_agents[0]
    executed, refused = target.executed, target.refused
    with client(mco, protocol=McollectiveProtocol("not-the-psk-" + secrets.token_hex(4))) as forger:
        result = forger.call("rpcutil", "ping", targets=[target.identity], timeout=2.0)
    deadline = time.monotonic() + 10
    while target.refused == refused and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result.replies == []
    assert target.refused > refused
    assert target.executed == executed
