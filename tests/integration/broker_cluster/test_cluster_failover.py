"""A RabbitMQ cluster of three nodes in namespaces loses one during a ping of 200 agents: every
agent still answers within that same ping, after failing over to another node."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time

import pytest

from drbootstrap.messaging.client import ClientConfig, RpcClient, RpcResult
from tests.support.agent_farm import REPORT_RECONNECTIONS, farm_command, start_farms, stop_farms
from tests.support.rabbit_cluster import RabbitCluster

AGENTS = 200
PROCESSES = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with RabbitCluster(tmp_path_factory.mktemp("rabbit-cluster"), size=3) as nodes:
        yield nodes


@pytest.fixture
def fleet(cluster, tmp_path):
    key = tmp_path / "psk"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    names = [f"a{index:03d}.cluster.test" for index in range(AGENTS)]
    farms: list[subprocess.Popen] = []
    try:
        farms = start_farms([[*farm_command(), REPORT_RECONNECTIONS, ",".join(cluster.urls), str(key), "rabbitmq",
                              "native", *names[index::PROCESSES]] for index in range(PROCESSES)])
        yield key, names, farms
    finally:
        stop_farms(farms)


def reconnection_times(farms: list[subprocess.Popen]) -> dict[str, float]:
    """Stop the farms and read when each agent reconnected (unix time)."""
    times: dict[str, float] = {}
    for farm in farms:
        os.killpg(farm.pid, signal.SIGTERM)
        out, _ = farm.communicate(timeout=60)
        for line in out.splitlines():
            if line.startswith("reconnected "):
                _, name, when = line.split()
                times.setdefault(name, float(when))
    return times


def connected_node(client: RpcClient, cluster: RabbitCluster) -> int:
    connection = client.transport._connection
    assert connection is not None
    host, _port = connection.transport.current_host_and_port
    return cluster.addresses.index(host)


def test_every_agent_answers_the_ping_during_which_the_clients_broker_node_is_killed(cluster, fleet):
    key, names, farms = fleet
    config = ClientConfig(brokers=cluster.urls, key_file=key, broker_kind="rabbitmq", discovery_timeout=30.0)
    with RpcClient(config) as client:
        before = client.ping(expect=names)
        assert sorted(before.responded) == names
        victim = connected_node(client, cluster)
        outcome: list[RpcResult] = []
        pinging = threading.Thread(target=lambda: outcome.append(client.ping(expect=names)))
        pinging.start()
        killed_at = time.time()
        cluster.kill(victim)
        pinging.join(60)
        assert outcome, "the ping did not return"
        during = outcome[0]
        assert during.no_response == [], f"silent after the kill: {during.no_response[:10]}"
        assert client.transport.reconnects >= 1
        survivor = connected_node(client, cluster)
        assert survivor != victim
        after = client.ping(expect=names)
        assert after.no_response == []
    agents = reconnection_times(farms)
    assert agents, "no agent was connected to the killed node"
    waits = sorted(when - killed_at for when in agents.values())
    slowest_agent = waits[-1]
    print(f"\nkilled node {victim} (the client's); ping during the kill: {during.elapsed_ms:.0f} ms for "
          f"{len(during.responded)}/{AGENTS}; before {before.elapsed_ms:.0f} ms, after {after.elapsed_ms:.0f} ms; "
          f"{len(agents)} agents reconnected, median {waits[len(waits) // 2]:.2f} s, the last "
          f"{slowest_agent:.2f} s after the kill")
    assert slowest_agent < 15
