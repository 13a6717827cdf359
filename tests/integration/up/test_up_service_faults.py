"""The master's services fail under a running `up`: the broker or dnsmasq killed (the master's
supervision restarts them, as systemd's Restart=on-failure would).

Each run completes, or stops with a clear line and a journal from which a plain `up` completes;
never a duplicate node.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.up.conftest import E2E_GATE, Environment, make_environment, tear_down

pytestmark = [pytest.mark.integration, E2E_GATE]

SPEC = """
environment: demo
domain: demo.internal
provider: {name: local, network: 10.213.0.0/24, max_parallel: 8, rate: {per_second: 20, burst: 40}}
master: {hostname: controller, image: master, puppet: {mode: apply}}
nodes:
  - {role: db, image: worker, hostnames: [db01]}
  - {role: web, image: worker, count: 2, hostname_pattern: "web{n:02}", after: [db]}
"""
NAMES = ["controller", "db01", "web01", "web02"]


def _journal(env: Environment) -> dict:
    try:
        return json.loads((env.home / "state" / "environments" / env.name / "journal.json").read_text())
    except (OSError, ValueError):
        return {"nodes": {}}


def _wait_until_workers_launched(env: Environment, run: subprocess.Popen, timeout: float = 300) -> dict:
    """The journal once the master's services are up and a worker is launched but not yet discovered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        nodes = _journal(env)["nodes"]
        master = nodes.get("controller", {}).get("steps", {})
        workers = [n["steps"] for name, n in nodes.items() if name != "controller"]
        if master.get("services", {}).get("state") == "done" and any(
            s.get("launch", {}).get("state") == "done" and s.get("discover", {}).get("state") != "done"
            for s in workers
        ):
            return nodes
        time.sleep(0.2)
    raise AssertionError(f"never reached mid-up (exit {run.poll()}): {run.stdout.read() if run.poll() else ''}")


def _master_dirs(env: Environment) -> tuple[Path, Path]:
    base = env.home / "state" / "environments" / env.name / "nodes" / "controller"
    return base / "etc", base / "var"


def _kill_by_pid_file(pid_file: Path) -> int:
    pid = int(pid_file.read_text().split()[0])
    os.kill(pid, signal.SIGKILL)  # a process this test's own `up` started on its master
    return pid


def _in_master(env: Environment, script: str) -> None:
    driver = env.driver()
    master = next(n for n in driver.list_nodes() if n.name == "controller")
    subprocess.run(driver.ex_enter_command(master, ["sh", "-c", script]), check=True, timeout=120,
                   capture_output=True)


def _finish(env: Environment, run: subprocess.Popen) -> tuple[int, str]:
    output, _ = run.communicate(timeout=900)
    return run.returncode, output


def _assert_completes_or_resumes(env: Environment, code: int, output: str) -> str:
    """Either this run completed, or it stopped with a clear line and a plain `up` completes."""
    if code != 0:
        last = output.strip().splitlines()[-1]
        assert "Traceback" not in output and "internal error" not in output, output[-3000:]
        assert last.strip(), output[-3000:]
        hostnames = env.live_hostnames()
        assert len(hostnames) == len(set(hostnames)), hostnames
        again = env.cli("up", str(env.spec_file), "--plain")
        assert again.returncode == 0, f"first run: {last}\nsecond run:\n{again.stdout[-3000:]}{again.stderr[-2000:]}"
        if "controller services done" in output:  # the resumed run probed them again before relying on them
            assert "controller services skipped: done earlier; still answering" in again.stdout, again.stdout[-3000:]
        failed = [line.strip() for line in output.splitlines() if "failed" in line][-3:]
        outcome = f"stopped with exit {code} ({' | '.join(failed)}); a plain up completed"
    else:
        outcome = "completed"
    assert env.live_hostnames() == NAMES
    assert sorted(n.name for n in env.driver().list_nodes()) == NAMES  # no duplicate, no orphan
    return outcome


def _wait_for_restart(env: Environment, service: str, timeout: float = 120) -> str:
    """The master's supervision log line saying SERVICE was started again."""
    log = _master_dirs(env)[1] / "supervisor.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        lines = [line for line in text.splitlines() if f"{service} restarted" in line]
        if lines:
            return lines[-1]
        time.sleep(0.5)
    raise AssertionError(f"the master's supervision never restarted {service}: "
                         f"{log.read_text() if log.exists() else '(no supervisor.log)'}")


RABBITMQ_SPEC = SPEC.replace("puppet: {mode: apply}}", "puppet: {mode: apply}, broker: {kind: rabbitmq}}")


@pytest.mark.parametrize(("service", "pid_file", "name", "spec"), [
    ("activemq", "activemq.pid", "upbroker", SPEC),
    ("rabbitmq", "rabbitmq.pid", "uprabbitkill", RABBITMQ_SPEC),  # the pid is its Erlang VM's
    ("dnsmasq", "dns/dnsmasq.pid", "updnsmasq", SPEC),
], ids=["broker", "rabbitmq", "dnsmasq"])
def test_a_master_service_killed_mid_up_is_restarted_by_the_masters_supervision(service, pid_file, name, spec):
    env = make_environment(spec, name)
    try:
        run = env.start("up", str(env.spec_file), "--plain")
        _wait_until_workers_launched(env, run)
        _, var = _master_dirs(env)
        _kill_by_pid_file(var / pid_file)
        print("supervision:", _wait_for_restart(env, service))
        code, output = _finish(env, run)
        print(f"{service} killed mid-up:", _assert_completes_or_resumes(env, code, output))
    finally:
        tear_down(env)
