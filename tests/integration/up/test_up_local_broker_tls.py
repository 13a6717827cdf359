"""`up` with `master.broker.tls: true` on the local cloud (TLS forced on: the local cloud's default is
plain STOMP): the controller makes the environment's CA before launch, the master's ActiveMQ serves
stomp+ssl with a certificate the master issues under it, and the controller, the master's agent and
every worker's agent verify it from their first connection against the CA in their user-data; a
controller trusting another CA is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from drbootstrap.broker import stomp_connect_succeeds
from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.support.prereq import REPO_ROOT

pytestmark = [pytest.mark.integration, E2E_GATE]
NODES = ["controller", "db01", "web01", "web02", "mail01"]


@pytest.fixture(scope="module")
def environment():
    text = (REPO_ROOT / "examples" / "local.yaml").read_text()
    assert "    port: 61613\n" in text
    env = make_environment(text.replace("    port: 61613\n", "    port: 61613\n    tls: true\n", 1), "upetls")
    try:
        env.first_run = env.cli("up", str(env.spec_file), "--json")
        yield env
    finally:
        tear_down(env)


def test_up_completes_with_the_broker_verified_against_the_environments_ca(environment):
    run = environment.first_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    events = [json.loads(line) for line in run.stdout.splitlines()]
    services = [e for e in events if e.get("event") == "step" and e["step"] == "services" and e["state"] == "done"]
    assert "stomp+ssl verified against the environment's broker CA" in services[-1]["detail"]
    assert environment.paths.broker_ca_key.stat().st_mode & 0o777 == 0o600


def test_the_master_address_serves_only_stomp_ssl_with_a_certificate_of_the_ca(environment):
    journal = json.loads(environment.paths.journal.read_text())
    address = journal["nodes"]["controller"]["address"]
    assert stomp_connect_succeeds(address, 61613, tls_ca=environment.paths.broker_ca)
    assert not stomp_connect_succeeds(address, 61613, timeout=3.0)


def test_every_agent_connects_over_stomp_ssl_verifying_by_the_ca_and_never_holds_its_key(environment):
    ca = environment.paths.broker_ca.read_text()
    ca_key = environment.paths.broker_ca_key.read_text()
    for hostname in NODES:
        config = yaml.safe_load((environment.paths.nodes / hostname / "var" / "agent.yaml").read_text())
        assert config["brokers"][0].startswith("stomp+ssl://")
        assert Path(config["tls_ca"]).read_text() == ca, hostname
        for path in (environment.paths.nodes / hostname).rglob("*"):
            if path.is_file() and path.stat().st_size < 1_000_000:
                assert ca_key not in path.read_text(errors="replace"), path


def test_status_reaches_every_agent_over_stomp_ssl(environment):
    run = environment.cli("status", str(environment.spec_file), "--json", timeout=120)
    status = json.loads(run.stdout)
    assert {n["hostname"]: n["agent"] for n in status["nodes"]} == dict.fromkeys(NODES, "answers")


def test_a_controller_trusting_another_ca_is_refused_by_the_broker_link(environment):
    from drbootstrap.messaging.broker_ca import issue_master_ca, make_environment_ca

    ca_file = environment.paths.broker_ca_chain  # what the controller checks the broker by
    ours = ca_file.read_text()
    other = make_environment_ca(environment.name)
    ca_file.write_text(other.cert_pem + issue_master_ca(other, environment.name).cert_pem)
    try:
        run = environment.cli("status", str(environment.spec_file), "--json", timeout=120)
    finally:
        ca_file.write_text(ours)
    status = json.loads(run.stdout)
    assert status["broker"].startswith("unreachable: cannot connect"), status["broker"]
    assert "the broker's certificate is not this environment's" in run.stderr  # not for being down
    assert all(n["agent"] != "answers" for n in status["nodes"]), status["nodes"]


def test_ping_by_the_environment_goes_over_stomp_ssl_with_the_pinned_certificate(environment):
    run = environment.cli("ping", "-f", str(environment.spec_file), "--json", timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(json.loads(run.stdout)["replies"]) == len(NODES)


def test_no_secret_in_traces_or_processes_including_the_broker_keystore_password(environment):
    from tests.support.secrets_scan import KnownSecret, environment_secrets, scan_for_secrets

    tls_dir = environment.paths.nodes / "controller" / "var" / "activemq" / "tls"
    password = (tls_dir / "keystore.password").read_text().strip()
    assert (tls_dir / "keystore.password").stat().st_mode & 0o777 == 0o600
    known = [*environment_secrets(environment.home / "state", environment.name),
             KnownSecret("the broker keystore password", password)]
    assert any("broker CA" in secret.name for secret in known)
    findings = scan_for_secrets(known, environment.home / "state")
    assert findings == [], "\n".join(findings)
