"""`up` with `broker.kind: rabbitmq` and `broker.tls: true` on the local cloud: the master's
RabbitMQ serves stomp+ssl with a certificate it issues at start under the environment's CA, every
agent and the controller verify it from their first connection, status reaches every agent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from drbootstrap.broker import stomp_connect_succeeds
from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.support.prereq import REPO_ROOT, require

pytestmark = [pytest.mark.integration, E2E_GATE]
NODES = ["controller", "db01", "web01", "web02", "mail01"]


@pytest.fixture(scope="module")
def environment():
    require(Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists(), "RabbitMQ (Debian `rabbitmq-server`)")
    text = (REPO_ROOT / "examples" / "local.yaml").read_text()
    assert "    kind: activemq\n    port: 61613\n" in text
    text = text.replace("    kind: activemq\n    port: 61613\n", "    kind: rabbitmq\n    port: 61613\n    tls: true\n")
    env = make_environment(text, "uprabtls")
    try:
        env.first_run = env.cli("up", str(env.spec_file), "--json")
        yield env
    finally:
        tear_down(env)


def test_up_on_rabbitmq_completes_with_the_broker_verified_against_the_environments_ca(environment):
    run = environment.first_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    events = [json.loads(line) for line in run.stdout.splitlines()]
    services = [e for e in events if e.get("event") == "step" and e["step"] == "services" and e["state"] == "done"]
    assert "stomp+ssl verified against the environment's broker CA" in services[-1]["detail"]


def test_the_masters_rabbitmq_serves_only_stomp_ssl_and_keeps_its_key_private(environment):
    journal = json.loads(environment.paths.journal.read_text())
    address = journal["nodes"]["controller"]["address"]
    assert stomp_connect_succeeds(address, 61613, tls_ca=environment.paths.broker_ca)
    assert not stomp_connect_succeeds(address, 61613, timeout=3.0)
    tls = environment.paths.nodes / "controller" / "var" / "rabbitmq" / "tls"
    assert (tls / "broker.key").stat().st_mode & 0o077 == 0


def test_every_agent_uses_stomp_ssl_and_rabbitmq_naming_and_status_reaches_them(environment):
    ca = environment.paths.broker_ca.read_text()
    for hostname in NODES:
        config = yaml.safe_load((environment.paths.nodes / hostname / "var" / "agent.yaml").read_text())
        assert config["brokers"][0].startswith("stomp+ssl://") and config["broker_kind"] == "rabbitmq"
        assert Path(config["tls_ca"]).read_text() == ca, hostname
    run = environment.cli("status", str(environment.spec_file), "--json", timeout=120)
    status = json.loads(run.stdout)
    assert {n["hostname"]: n["agent"] for n in status["nodes"]} == dict.fromkeys(NODES, "answers")
