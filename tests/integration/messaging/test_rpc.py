"""Native RPC against a real ActiveMQ: ping, filters, direct addressing, batching, CLI, TLS."""

from __future__ import annotations

import json

import pytest

from drbootstrap.messaging.envelope import StatusCode
from drbootstrap.messaging.filters import build_filter
from tests.support.prereq import run_cli

pytestmark = pytest.mark.integration


def test_ping_with_expected_identities_returns_every_agent(fleet):
    with fleet.client() as client:
        result = client.ping(expect=fleet.identities)
    assert sorted(result.responded) == sorted(fleet.identities)
    assert result.no_response == []


def test_ping_without_expectation_finds_every_agent_by_sliding_window(fleet):
    with fleet.client() as client:
        found = client.discover(build_filter(identity=[f"/-{fleet.suffix}$/"]))
    assert found == sorted(fleet.identities)


def test_expected_identity_that_is_not_running_is_reported_as_no_response(fleet):
    missing = f"ghost-{fleet.suffix}"
    with fleet.client(discovery_timeout=1.0) as client:
        result = client.ping(build_filter(identity=[f"/-{fleet.suffix}$/"]), expect=[*fleet.identities, missing])
    assert result.no_response == [missing]
    assert f"{len(fleet.identities)} / {len(fleet.identities) + 1} hosts" in result.summary()


@pytest.mark.parametrize("filters, prefixes", [
    ({"fact": ["role=web"]}, ["web01", "web02", "web03"]),
    ({"fact": ["cpus>=4"]}, ["db01", "db02"]),
    ({"fact": ["zone=/^b$/"]}, ["web02", "db01"]),
    ({"cf_class": ["mysql"]}, ["db01", "db02"]),
    ({"identity": ["/^web0[12]-/"]}, ["web01", "web02"]),
    ({"fact": ["role!=web"], "cf_class": ["base"]}, ["db01", "db02"]),
])
def test_filters_select_the_matching_nodes(fleet, filters, prefixes):
    mine = build_filter(**filters)
    mine = type(mine)(identity=mine.identity or (f"/-{fleet.suffix}$/",), fact=mine.fact,
                      cf_class=mine.cf_class, agent=mine.agent)
    with fleet.client() as client:
        result = client.call("rpcutil", "ping", filter_=mine)
    assert sorted(result.responded) == sorted(f"{p}-{fleet.suffix}" for p in prefixes)


def test_agent_filter_excludes_nodes_without_that_agent(fleet):
    scoped = f"/-{fleet.suffix}$/"
    with fleet.client() as client:
        assert client.discover(build_filter(identity=[scoped], agent=["dns"])) == []
        assert len(client.discover(build_filter(identity=[scoped], agent=["puppet"]))) == 5


def test_direct_addressing_reaches_only_the_named_identities(fleet):
    targets = fleet.identities[1:3]
    with fleet.client() as client:
        result = client.call("rpcutil", "get_fact", {"fact": "role"}, targets=targets)
    assert sorted(result.responded) == sorted(targets)
    assert all(reply.status_code == StatusCode.OK for reply in result.replies)


def test_batching_sends_one_request_per_batch_and_collects_every_reply(fleet):
    with fleet.client() as client:
        result = client.call("rpcutil", "ping", targets=fleet.identities, batch_size=2, batch_sleep=0.1)
    assert result.requests_sent == 3
    assert sorted(result.responded) == sorted(fleet.identities)


def test_invalid_input_comes_back_as_status_4_from_every_node(fleet):
    with fleet.client() as client:
        result = client.call("rpcutil", "get_fact", {"fact": 12}, targets=fleet.identities[:2])
    assert {reply.status_code for reply in result.replies} == {StatusCode.INVALID_DATA}


def test_cli_ping_and_rpc_print_json_with_summary(fleet):
    common = ["--broker", fleet.broker_url, "--key-file", str(fleet.key_file), "--expect", ",".join(fleet.identities)]
    ping = run_cli("ping", *common, "--json")
    assert ping.exit_code == 0, ping.stderr
    assert sorted(r["sender"] for r in json.loads(ping.stdout)["replies"]) == sorted(fleet.identities)
    rpc = run_cli("rpc", *common, "-F", "role=db", "rpcutil", "get_fact", "fact=role")
    assert rpc.exit_code == 7, rpc.stdout  # the web nodes were expected but filtered out
    assert "Finished processing 2 / 5 hosts" in rpc.stdout and "No response from: web01" in rpc.stdout


def test_cli_rpc_direct_to_expected_identities(fleet):
    target = fleet.identities[0]
    out = run_cli("rpc", "--broker", fleet.broker_url, "--key-file", str(fleet.key_file), "--expect", target,
                  "--direct", "--json", "rpcutil", "get_fact", "fact=cpus")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["replies"][0]["data"] == {"fact": "cpus", "value": 1}


def test_client_and_agents_speak_over_stomp_ssl(activemq, fleet, tmp_path):
    from drbootstrap.agent.daemon import run_agents
    from tests.integration.messaging.conftest import node_config

    tls_url = f"stomp+ssl://{activemq.host}:{activemq.tls_port}"
    ca = activemq.config.tls.cert_pem
    config = node_config(tmp_path, tls_url, fleet.key_file, f"tls01-{fleet.suffix}", tls_ca=str(ca))
    servers = run_agents([config], wait=20)
    try:
        with fleet.client(brokers=[tls_url], tls_ca=ca) as client:
            result = client.ping(expect=[config.identity])
        assert config.identity in result.responded
    finally:
        for server in servers:
            server.stop()


def test_agent_and_client_fail_over_past_a_dead_broker_in_their_list(fleet, tmp_path):
    from drbootstrap.agent.daemon import run_agents
    from drbootstrap.broker import free_port
    from tests.integration.messaging.conftest import node_config

    dead = f"stomp://127.0.0.1:{free_port()}"
    config = node_config(tmp_path, dead, fleet.key_file, f"fo01-{fleet.suffix}", brokers=[dead, fleet.broker_url])
    servers = run_agents([config], wait=20)
    try:
        with fleet.client(brokers=[dead, fleet.broker_url]) as client:
            assert config.identity in client.ping(expect=[config.identity]).responded
    finally:
        servers[0].stop()
