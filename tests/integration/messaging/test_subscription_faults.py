"""A connection the broker accepts but then fumbles is made again, not used deaf.

A libvirt run of `up` (its master's ActiveMQ starved of CPU by three booting VMs) saw a fresh
connection answered with ActiveMQ's ERROR "Already connected." and then nothing: no receipt for the
subscriptions, no reply to `dns.add` for 60 s, and db01 failed. Here a proxy in front of the real
ActiveMQ breaks the first connection made through it in those two ways
(tests/support/stomp_fault_proxy.py); the client and the agent must end up on a working one.
"""

from __future__ import annotations

import secrets

import pytest

from drbootstrap.agent.daemon import run_agents
from drbootstrap.messaging.client import ClientConfig, RpcClient
from tests.integration.messaging.conftest import new_key, node_config
from tests.support.stomp_fault_proxy import DEAF, DUPLICATE_CONNECT, stomp_fault_proxy

pytestmark = pytest.mark.integration


@pytest.fixture
def agents(activemq, tmp_path):
    """Two agents straight on the broker (not through a proxy)."""
    key = new_key(tmp_path)
    url = f"stomp://{activemq.host}:{activemq.port}"
    suffix = secrets.token_hex(3)
    servers = run_agents([node_config(tmp_path, url, key, f"sub{i}-{suffix}") for i in range(2)], wait=30)
    try:
        yield key, [s.identity for s in servers]
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize("fault", [DUPLICATE_CONNECT, DEAF])
def test_the_client_drops_a_fumbled_connection_and_its_calls_are_answered(activemq, agents, fault, caplog):
    key, names = agents
    with stomp_fault_proxy((activemq.host, activemq.port), fault) as proxy:
        config = ClientConfig(brokers=[proxy.url], key_file=key, connect_timeout=3.0, discovery_timeout=5.0)
        with RpcClient(config) as client:
            assert sorted(client.ping(expect=names).responded) == sorted(names)
        assert proxy.connections == 2  # the fumbled one, then one that works
    if fault == DUPLICATE_CONNECT:
        # the real broker's own answer to a second CONNECT on one connection
        assert proxy.broker_errors and b"Already connected." in proxy.broker_errors[0]
        assert "before confirming the subscriptions; connecting again" in caplog.text
    else:
        assert "no receipt for the subscriptions within 3 s; connecting again" in caplog.text


def test_an_agent_whose_first_connection_is_answered_with_an_error_reconnects_and_answers(activemq, tmp_path):
    key = new_key(tmp_path)
    with stomp_fault_proxy((activemq.host, activemq.port), DUPLICATE_CONNECT) as proxy:
        identity = f"fumbled-{secrets.token_hex(3)}"
        servers = run_agents([node_config(tmp_path, proxy.url, key, identity)], wait=30)
        try:
            assert proxy.connections >= 2 and proxy.broker_errors
            direct = f"stomp://{activemq.host}:{activemq.port}"
            with RpcClient(ClientConfig(brokers=[direct], key_file=key, discovery_timeout=5.0)) as client:
                assert client.ping(expect=[identity]).responded == [identity]
        finally:
            for server in servers:
                server.stop()
