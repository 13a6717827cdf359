"""Debian's `mco` 2.12 on a RabbitMQ cluster of three nodes, its connector given all of them as a
pool (plugin.rabbitmq.pool.N), and drbootstrap agents in MCollective mode given all of them too:
`mco ping` lists every agent, and lists them all again with the pool's first node dead."""

from __future__ import annotations

import secrets
import subprocess
import time

from drbootstrap.messaging.client import ClientConfig, RpcClient
from tests.support.agent_farm import farm_command, start_farms, stop_farms
from tests.support.mcollective import run_mco, write_mcollective_config
from tests.support.prereq import require_binary
from tests.support.rabbit_cluster import STOMP_PORT, RabbitCluster

AGENTS = 60
PROCESSES = 2


def mco_answered(stdout: str) -> set[str]:
    return {line.split()[0] for line in stdout.splitlines() if " time=" in line}


def test_mco_ping_with_a_pool_of_the_cluster_nodes_lists_every_agent_before_and_after_the_first_dies(tmp_path):
    require_binary("mco")
    psk = secrets.token_hex(16)
    key = tmp_path / "psk"
    key.write_text(psk)
    key.chmod(0o600)
    names = [f"m{index:03d}.pool.test" for index in range(AGENTS)]
    farms: list[subprocess.Popen] = []
    with RabbitCluster(tmp_path / "cluster", size=3) as cluster:
        client_cfg = write_mcollective_config(
            tmp_path / "client.cfg", identity="mco-pool-client", broker_host=cluster.addresses[0],
            broker_port=STOMP_PORT, psk=psk, connector="rabbitmq", loglevel="info",
            more_brokers=[(address, STOMP_PORT) for address in cluster.addresses[1:]])
        assert "plugin.rabbitmq.pool.size = 3" in client_cfg.read_text()
        try:
            farms = start_farms([[*farm_command(), ",".join(cluster.urls), str(key), "rabbitmq", "mcollective",
                                  *names[index::PROCESSES]] for index in range(PROCESSES)])
            before = run_mco(client_cfg, "ping")
            assert before.returncode == 0, before.stderr
            assert mco_answered(before.stdout) == set(names), before.stdout[-2000:]

            cluster.kill(0)  # the pool's first node, the one mco connects to first
            survivors = ClientConfig(brokers=cluster.urls[1:], key_file=key, protocol="mcollective",
                                     broker_kind="rabbitmq", discovery_timeout=5.0)
            deadline = time.monotonic() + 60
            with RpcClient(survivors) as client:  # the agents on node 0 have failed over
                while client.ping(expect=names).no_response:
                    assert time.monotonic() < deadline, "agents did not fail over to the surviving nodes"
            began = time.monotonic()
            after = run_mco(client_cfg, "ping")
            took = time.monotonic() - began
            assert after.returncode == 0, after.stderr
            assert mco_answered(after.stdout) == set(names), after.stdout[-2000:]
            print(f"\nmco ping with the pool's first node dead: {len(mco_answered(after.stdout))}/{AGENTS} "
                  f"in {took:.1f} s (process)")
        finally:
            stop_farms(farms)
