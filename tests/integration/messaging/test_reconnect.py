"""Killing and restarting the broker: every running agent answers again within 10 s."""

from __future__ import annotations

import secrets
import time

import pytest

from drbootstrap.agent.daemon import run_agents
from drbootstrap.messaging.client import ClientConfig, RpcClient
from tests.integration.messaging.conftest import new_key, node_config

pytestmark = pytest.mark.integration

RECOVERY_LIMIT = 10.0  # the promise, counted from the broker serving STOMP again


def test_agents_answer_again_after_the_broker_is_killed_and_restarted(private_activemq, tmp_path):
    url = f"stomp://{private_activemq.host}:{private_activemq.port}"
    key = new_key(tmp_path)
    suffix = secrets.token_hex(3)
    configs = [node_config(tmp_path, url, key, f"n{i}-{suffix}") for i in range(4)]
    names = [c.identity for c in configs]
    servers = run_agents(configs, wait=20)
    try:
        client_config = ClientConfig(brokers=[url], key_file=key, discovery_timeout=1.0)
        with RpcClient(client_config) as client:
            assert sorted(client.ping(expect=names).responded) == sorted(names)

        private_activemq.kill()
        private_activemq.restart()
        ready = time.monotonic()

        answered: set[str] = set()
        while time.monotonic() - ready < RECOVERY_LIMIT and answered != set(names):
            try:
                with RpcClient(client_config) as client:
                    answered |= set(client.ping(expect=names).responded)
            except Exception:  # noqa: BLE001 - the client may race the broker's first seconds
                time.sleep(0.2)
        assert answered == set(names), f"still silent after {RECOVERY_LIMIT}s: {sorted(set(names) - answered)}"
        assert all(server.transport.reconnects >= 1 for server in servers)
    finally:
        for server in servers:
            server.stop()
