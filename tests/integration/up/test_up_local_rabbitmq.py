"""`drbootstrap up` of examples/local.yaml with `broker.kind: rabbitmq`: the master runs RabbitMQ
(rabbitmq_stomp) instead of ActiveMQ, every agent answers through it, and down leaves nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.support.prereq import REPO_ROOT, require
from tests.support.secrets_scan import environment_secrets, scan_for_secrets

pytestmark = [pytest.mark.integration, E2E_GATE]
WORKERS = ["db01", "web01", "web02", "mail01"]


def rabbitmq_spec() -> str:
    text = (REPO_ROOT / "examples" / "local.yaml").read_text()
    assert "    kind: activemq\n" in text
    return text.replace("    kind: activemq\n", "    kind: rabbitmq\n")


@pytest.fixture(scope="module")
def environment():
    require(Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists(), "RabbitMQ (Debian `rabbitmq-server`)")
    env = make_environment(rabbitmq_spec(), "uprabbit")
    try:
        env.first_run = env.cli("up", str(env.spec_file), "--json")
        env.secrets = environment_secrets(env.home / "state", env.name)
        yield env
    finally:
        tear_down(env)


def test_up_completes_every_node_on_rabbitmq(environment):
    run = environment.first_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["event"] == "result" and result["failed"] == []
    assert environment.live_hostnames() == sorted(["controller", *WORKERS])


def test_the_master_runs_rabbitmq_not_activemq_with_private_credentials(environment):
    master = environment.paths.nodes / "controller" / "var"
    assert (master / "rabbitmq.pid").is_file() and not (master / "activemq.pid").exists()
    pid = int((master / "rabbitmq.pid").read_text())
    assert b"rabbit boot" in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")  # its Erlang VM
    for name in ("rabbitmq.conf", "definitions.json", "broker.password", ".erlang.cookie"):
        assert (master / "rabbitmq" / name).stat().st_mode & 0o077 == 0, name
    assert "broker_kind: rabbitmq" in (master / "agent.yaml").read_text()


def test_status_pings_every_agent_through_rabbitmq(environment):
    run = environment.cli("status", str(environment.spec_file), "--json", timeout=120)
    status = json.loads(run.stdout)
    assert {n["hostname"]: n["agent"] for n in status["nodes"]} == dict.fromkeys(["controller", *WORKERS], "answers")


def test_no_secret_in_logs_reports_journal_or_processes(environment):
    findings = scan_for_secrets(environment.secrets, environment.home / "state")
    assert findings == [], "\n".join(findings)
    broker_dir = environment.paths.nodes / "controller" / "var" / "rabbitmq"
    password = (broker_dir / "broker.password").read_text().strip()
    own = {broker_dir / "broker.password", broker_dir / "rabbitmq.conf"}  # the 0600 files that hold it
    for path in (environment.home / "state").rglob("*"):
        if path.is_file() and path not in own and path.stat().st_size < 5_000_000:
            try:
                data = path.read_bytes()
            except OSError:  # a node's special files (bound over /proc entries)
                continue
            assert password.encode() not in data, path
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue


def test_down_leaves_no_rabbitmq_behind(environment):
    master_dir = str(environment.paths.nodes / "controller")
    first = environment.cli("down", str(environment.spec_file), "--yes", timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert environment.live_hostnames() == []
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if master_dir.encode() in cmdline:  # beam's -home is the node's broker dir
            left.append(cmdline.replace(b"\0", b" ")[:120].decode(errors="replace"))
    assert left == []
