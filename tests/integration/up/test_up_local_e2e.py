"""`drbootstrap up examples/local.yaml` on the local cloud: master + 4 workers, checked end to end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from drbootstrap.report.html import STEP_COLOURS
from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.support.chromium import colours, png_size, render
from tests.support.prereq import REPO_ROOT
from tests.support.secrets_scan import environment_secrets, scan_for_secrets

pytestmark = [pytest.mark.integration, E2E_GATE]
WORKERS = ["db01", "web01", "web02", "mail01"]


@pytest.fixture(scope="module")
def environment():
    # The example exactly as written (its db check finds the recipe root through DRB_ROOT).
    text = (REPO_ROOT / "examples" / "local.yaml").read_text()
    env = make_environment(text, "upe2e")
    try:
        env.first_run = env.cli("up", str(env.spec_file), "--json")
        env.secrets = environment_secrets(env.home / "state", env.name)  # kept for the scan after down
        yield env
    finally:
        tear_down(env)


def test_up_completes_every_node(environment):
    run = environment.first_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["event"] == "result" and result["failed"] == []
    assert environment.live_hostnames() == sorted(["controller", *WORKERS])


def test_recipes_reach_the_master_over_ssh_with_its_console_host_key_pinned(environment):
    events = [json.loads(line) for line in environment.first_run.stdout.splitlines()]
    done = [e for e in events if e.get("event") == "step" and e["step"] == "services" and e["state"] == "done"]
    assert done, environment.first_run.stdout[-2000:]
    detail = done[-1]["detail"]
    assert "pushed over SSH" in detail and "SHA256:" in detail and "pinned from its console" in detail
    key = environment.paths.ssh_private_key
    assert key.stat().st_mode & 0o777 == 0o600


def test_no_secret_in_logs_reports_journal_or_processes_after_up(environment):
    names = {secret.name for secret in environment.secrets}
    assert "the PSK" in names and any(name.startswith("the autosign token of web01") for name in names)
    assert {"the ed25519 signing key keys/operator.pem", "the ed25519 signing key keys/nodes/web01.pem"} <= names
    findings = scan_for_secrets(environment.secrets, environment.home / "state")
    assert findings == [], "\n".join(findings)


def test_each_worker_took_its_spec_name(environment):
    for hostname in WORKERS:
        assert environment.in_node(hostname, "hostname") == hostname


def test_the_puppet_run_left_its_effect_on_every_worker(environment):
    roles = {"db01": "db", "web01": "web", "web02": "web", "mail01": "mail"}
    nodes = environment.paths.nodes
    for hostname, role in roles.items():
        root = nodes / hostname / "root"  # the worker's recipe_root: its recipes write under it
        assert environment.in_node(hostname, f"cat {root}/etc/drbootstrap/role") == role


def test_forward_and_reverse_dns_through_the_master_agree(environment):
    import dns.resolver
    import dns.reversename

    journal = json.loads(environment.paths.journal.read_text())
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [journal["nodes"]["controller"]["address"]]
    for hostname in WORKERS:
        fqdn = f"{hostname}.demo.internal"
        address = journal["nodes"][hostname]["address"]
        assert [a.to_text() for a in resolver.resolve(fqdn, "A")] == [address]
        ptr = resolver.resolve(dns.reversename.from_address(address), "PTR")
        assert [p.to_text().rstrip(".") for p in ptr] == [fqdn]


def test_status_pings_exactly_the_spec_names_and_sees_puppet_ran(environment):
    run = environment.cli("status", str(environment.spec_file), "--json", timeout=120)
    status = json.loads(run.stdout)
    assert {n["hostname"]: n["agent"] for n in status["nodes"]} == dict.fromkeys(["controller", *WORKERS], "answers")
    assert status["orphans"] == []
    for node in status["nodes"]:
        if node["role"] != "master":
            assert node["puppet_status"]["enabled"] is True and node["puppet_status"]["lastrun"] > 0
            assert "enabled, last run" in node["puppet"]


def test_a_request_signed_with_web01s_key_is_refused_by_db01_and_the_operators_answered(environment):
    from drbootstrap.messaging.client import ClientConfig, RpcClient

    keys = environment.paths.keys
    journal = json.loads(environment.paths.journal.read_text())
    broker = f"stomp://{journal['nodes']['controller']['address']}:61613"
    agent_log = next((environment.paths.nodes / "db01").rglob("agent.log"))
    refusals_before = agent_log.read_text().count("refused a request")
    as_web01 = ClientConfig([broker], key_file=keys / "nodes" / "web01.pem", key_id="web01",
                            trusted_keys_dir=keys / "client-trusted", identity="e2e-web01")
    with RpcClient(as_web01) as client:
        stolen = client.call("rpcutil", "ping", {}, targets=["db01.demo.internal"], timeout=5)
    as_operator = ClientConfig([broker], key_file=keys / "operator.pem", trusted_keys_dir=keys / "client-trusted",
                               identity="e2e-operator")
    with RpcClient(as_operator) as client:
        answered = client.call("rpcutil", "ping", {}, targets=["db01.demo.internal"], timeout=10)
    assert stolen.replies == [] and answered.responded == ["db01.demo.internal"]
    refusals = agent_log.read_text().split("refused a request")[refusals_before + 1:]
    assert any("untrusted key id 'web01'" in line.splitlines()[0] for line in refusals), agent_log.read_text()[-2000:]


def test_report_has_a_timeline_entry_for_every_node_and_step(environment):
    report = environment.report()
    assert report["ok"] and report["time_to_recovery_seconds"] > 0
    steps = {n["hostname"]: {s["step"] for s in n["steps"] if s["state"] == "done"} for n in report["nodes"]}
    assert steps["controller"] == {"launch", "boot", "services", "register_name", "discover", "puppet_ca"}
    for hostname in WORKERS:
        assert {"launch", "register_name", "boot", "take_name", "discover", "puppet_run", "checks"} <= steps[hostname]


def test_workers_were_named_while_the_puppet_server_was_still_starting(environment):
    report = environment.report()
    nodes = {n["hostname"]: {s["step"]: s for s in n["steps"]} for n in report["nodes"]}
    ca_ready = nodes["controller"]["puppet_ca"]["finished_at"]
    assert any(nodes[h]["take_name"]["finished_at"] < ca_ready for h in WORKERS)
    assert all(nodes[h]["puppet_sign"]["started_at"] >= ca_ready for h in WORKERS)
    web = [nodes[h]["puppet_run"]["started_at"] for h in ("web01", "web02")]  # web waits for db (after:)
    assert min(web) >= nodes["db01"]["checks"]["finished_at"]
    assert 0 < report["critical_path_seconds"] <= report["recovery_span_seconds"]
    result = json.loads(environment.first_run.stdout.splitlines()[-1])
    assert result["critical_path_seconds"] == report["critical_path_seconds"]
    assert all(nodes[h]["puppet_run"]["detail"].startswith(("applied ", "no changes")) for h in WORKERS)


def test_html_report_of_the_run_renders_in_chromium(environment, tmp_path):
    report_html = environment.paths.report_html
    rendered = render(report_html, tmp_path)
    kept = Path(tempfile.gettempdir()) / "drbootstrap-test-artefacts" / "report-up-local-e2e.png"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(rendered.screenshot, kept)
    print(f"\nscreenshot of the rendered report: {kept}")
    assert rendered.dom.count('class="bar ') == sum(len(n["steps"]) for n in environment.report()["nodes"])
    assert png_size(rendered.screenshot) == (1280, 1000)
    assert {STEP_COLOURS["launch"], STEP_COLOURS["puppet_run"]} <= colours(rendered.screenshot)


def test_up_again_launches_and_repeats_nothing(environment):
    run = environment.cli("up", str(environment.spec_file), "--json")
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert run.returncode == 0
    assert {e["state"] for e in events if e.get("event") == "step" and e["step"]} == {"skipped"}


def test_status_exits_partial_naming_a_silent_agent_and_down_without_a_terminal_destroys_nothing(environment):
    agent_pid = int((environment.paths.nodes / "mail01" / "var" / "agent.pid").read_text())
    os.kill(agent_pid, signal.SIGTERM)  # the agent this environment's mail01 started
    deadline = time.monotonic() + 10
    while Path(f"/proc/{agent_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    run = environment.cli("status", str(environment.spec_file), "--json", timeout=120)
    assert run.returncode == 7, run.stderr
    assert json.loads(run.stdout)["problems"] == ["mail01: its agent is silent"]

    refused = environment.cli("down", str(environment.spec_file))  # no --yes, and no terminal to ask at
    assert refused.returncode == 12 and refused.stderr.count("\n") == 1, refused.stderr
    assert "nothing destroyed" in refused.stderr and "--yes" in refused.stderr
    assert environment.live_hostnames() == sorted(["controller", *WORKERS])


def test_down_leaves_nothing_behind_and_is_idempotent(environment):
    from tests.integration.local_cloud.support import leftovers, processes_of

    before = processes_of(environment.driver())
    first = environment.cli("down", str(environment.spec_file), "--yes", timeout=300)
    assert first.returncode == 0 and "destroyed 5 node(s)" in first.stdout
    assert environment.live_hostnames() == []
    # not only the nodes: no namespace, link, mount, node process or anchor of this cloud is left
    assert leftovers(environment.driver(), before) == []
    again = environment.cli("down", str(environment.spec_file), "--yes", timeout=300)
    assert again.returncode == 0 and "destroyed 0 node(s)" in again.stdout


def test_no_secret_in_what_down_leaves_or_in_processes(environment):
    findings = scan_for_secrets(environment.secrets, environment.home / "state")
    assert findings == [], "\n".join(findings)
