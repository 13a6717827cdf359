"""`up` killed with SIGKILL at ten moments spread over a whole server-mode run converges, rerun after
rerun, to exactly the spec's nodes with every agent answering; two `up` started together: one runs,
the other is refused naming it (exit 10), and the run after a killed holder takes its lock over. A
node whose image fails to boot fails alone, and `up --only FAILED` completes the environment once
the image is fixed."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.integration.up.conftest import E2E_GATE, PROJECT, REPO_ROOT, Environment, make_environment, tear_down

pytestmark = [pytest.mark.integration, E2E_GATE]

APPLY_SPEC = """
environment: demo
domain: demo.internal
provider: {name: local, network: 10.213.0.0/24, max_parallel: 8, rate: {per_second: 20, burst: 40}}
master: {hostname: controller, image: master, puppet: {mode: apply}}
nodes:
  - {role: db, image: IMAGE, hostnames: [db01]}
  - {role: web, image: worker, count: 2, hostname_pattern: "web{n:02}", after: [db]}
  - {role: mail, image: worker, hostnames: [mail01]}
"""
NAMES = ["controller", "db01", "mail01", "web01", "web02"]
BUSY = 10  # ExitStatus.BUSY


def _step(node: str, step: str, state: str = "running") -> Callable[[dict], bool]:
    return lambda e: e.get("event") == "step" and e["node"] == node and e["step"] == step and e["state"] == state


# (the moment, the event that marks it, seconds after that event): in the order a run reaches them,
# so each is still ahead when the run before it was killed.
KILLS = [
    ("the master's launch", _step("controller", "launch"), 0.2),
    ("the master's boot", _step("controller", "boot"), 0.2),  # a step that ends before the kill is not ahead
    ("the master's services", _step("controller", "services"), 0.0),
    ("workers launching beside the master", _step("db01", "launch"), 0.1),
    ("a worker taking its name", _step("mail01", "take_name"), 0.3),
    ("web01 waiting for db01 at its Puppet gate", _step("web01", "puppet_sign", "waiting"), 0.3),
    ("db01's first Puppet run", _step("db01", "puppet_run"), 1.0),
    ("mail01's first Puppet run", _step("mail01", "puppet_run"), 1.0),
    ("the web nodes' first Puppet runs", _step("web02", "puppet_run"), 1.0),
    ("web01's checks", _step("web01", "checks"), 0.0),
]


@dataclass
class Run:
    """`drbootstrap up --json` as a process, its output read as it comes (events parsed)."""

    process: subprocess.Popen
    lines: queue.Queue = field(default_factory=queue.Queue)
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, env: Environment) -> Run:
        run = cls(env.start("up", str(env.spec_file), "--json"))
        threading.Thread(target=run._read, daemon=True).start()
        return run

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def events(self) -> list[dict]:
        return [_parse(line) for line in self.output if _parse(line)]

    def kill_when(self, seen: Callable[[dict], bool], after: float, timeout: float = 420) -> bool:
        """SIGKILL the run `after` seconds past the first event `seen` matches; False if it never came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1.0)
            except queue.Empty:
                continue
            if line is None:
                return False  # the run ended first
            event = _parse(line)
            if event and seen(event):
                time.sleep(after)
                if self.process.poll() is not None:
                    return False
                os.killpg(self.process.pid, signal.SIGKILL)  # the process group we started
                self.process.wait(timeout=30)
                return True
        return False

    def wait(self, timeout: float = 900) -> int:
        code = self.process.wait(timeout=timeout)
        time.sleep(0.2)  # let the reader take the last lines
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def _parse(line: str) -> dict | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def test_up_killed_at_ten_moments_converges_and_a_second_up_is_refused_by_the_lock():
    env = make_environment((REPO_ROOT / "examples" / "local.yaml").read_text(), "upcrash")
    started = time.monotonic()
    runs: list[Run] = []
    try:
        # Two `up` at once: one holds the environment, the other is refused naming it.
        first, second = Run.start(env), Run.start(env)
        runs += [first, second]
        deadline = time.monotonic() + 120
        while first.process.poll() is None and second.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        refused, holder = (first, second) if first.process.poll() is not None else (second, first)
        assert refused.wait(timeout=30) == BUSY, "".join(refused.output)[-2000:]
        message = "".join(refused.output)
        assert f"`up` (pid {holder.process.pid} on " in message and "up refused" in message, message
        assert holder.process.poll() is None  # the holder goes on

        fired, killed_pids, run = [], [], holder
        for index, (moment, seen, after) in enumerate(KILLS):
            if run.kill_when(seen, after):
                fired.append(moment)
                killed_pids.append(run.process.pid)
            hostnames = env.live_hostnames()
            assert len(hostnames) == len(set(hostnames)), (moment, hostnames)
            if index + 1 < len(KILLS):
                run = Run.start(env)
                runs.append(run)
        assert fired == [moment for moment, _, _ in KILLS], f"kills that came: {fired}"

        final = Run.start(env)
        runs.append(final)
        code = final.wait()
        tail = "".join(final.output)[-4000:]
        assert code == 0, tail
        # The run after a killed holder took its lock over, and said whose.
        took_over = [e for e in runs[2].events() if e.get("step") == "lock"]
        assert took_over and f"pid {killed_pids[0]} " in took_over[0]["detail"], runs[2].output[:5]
        result = json.loads(final.output[-1])
        assert result["event"] == "result" and result["failed"] == []

        # A Puppet run a killed `up` had asked for was waited for and adopted, not refused on its lock.
        puppet_runs = [s["detail"] for n in env.report()["nodes"] for s in n["steps"] if s["step"] == "puppet_run"]
        assert any("adopted the run already in flight" in detail for detail in puppet_runs), puppet_runs

        assert env.live_hostnames() == NAMES  # exactly the spec's nodes: none twice, none missing
        assert sorted(n.name for n in env.driver().list_nodes()) == NAMES  # and no orphan
        status = json.loads(env.cli("status", str(env.spec_file), "--json", timeout=120).stdout)
        assert {n["hostname"]: n["agent"] for n in status["nodes"]} == dict.fromkeys(NAMES, "answers")
        assert all(n["complete"] for n in status["nodes"]) and status["orphans"] == []
        print(f"ten kills and the final up: {time.monotonic() - started:.0f} s")
    finally:
        for run in runs:
            run.stop()
        tear_down(env)


def test_node_whose_image_fails_to_boot_fails_alone_and_only_failed_completes_after_the_fix():
    env = make_environment(APPLY_SPEC.replace("IMAGE", "broken"), "upfail")
    project = env.home / "project"  # a copy of the project whose `broken` image cannot boot
    shutil.copytree(PROJECT / "images", project / "images")
    (project / "recipes").symlink_to(PROJECT / "recipes")
    (project / "images" / "broken").mkdir()
    (project / "images" / "broken" / "boot.sh").write_text("#!/bin/sh\necho 'broken image: no kernel'\nexit 1\n")
    env.project = project
    try:
        first = env.cli("up", str(env.spec_file), "--plain")
        assert first.returncode == 7, first.stdout[-3000:]
        assert "db01 failed at boot" in first.stdout and "broken image: no kernel" in first.stdout
        assert "web01 blocked" in first.stdout and "mail01" not in first.stdout.split("nodes not up")[1]
        shutil.copy(PROJECT / "images" / "worker" / "boot.sh", project / "images" / "broken" / "boot.sh")
        second = env.cli("up", str(env.spec_file), "--only", "FAILED", "--plain")
        assert second.returncode == 0, second.stdout[-3000:]
        assert env.live_hostnames() == NAMES
    finally:
        tear_down(env)
