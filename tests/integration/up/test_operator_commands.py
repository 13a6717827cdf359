"""The operator's commands on one environment brought up in a terminal (tmux): the live view's
heartbeat and recap, then ping/rpc/puppet by the environment (-f), ssh, logs and plan against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.support.prereq import REPO_ROOT, require_binary

pytestmark = [pytest.mark.integration, E2E_GATE]
NAMES = ["controller", "db01", "mail01", "web01", "web02"]
DOMAIN = "demo.internal"
ARTEFACTS = Path("/tmp/drbootstrap-test-artefacts")


def _tmux(socket: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["tmux", "-S", socket, *args], env=env, capture_output=True, text=True, timeout=30,
                          check=False)
    return done.stdout


def _up_in_tmux(environment, socket: str, timeout: float = 1500) -> list[tuple[float, str]]:
    """`up` on a real terminal (a tmux pane 160x50); the pane captured every 2 s until it exits."""
    # A heartbeat every 2 s: on a quiet machine the master's Puppet CA answers within 20 s.
    command = f"{sys.executable} -m drbootstrap up {environment.spec_file} --heartbeat 2; echo DRB-EXIT=$?; sleep 900"
    _tmux(socket, "new-session", "-d", "-s", "up", "-x", "160", "-y", "50", command, env=environment.env())
    panes: list[tuple[float, str]] = []
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pane = _tmux(socket, "capture-pane", "-p", "-t", "up")
        panes.append((round(time.monotonic() - started, 1), pane))
        if "DRB-EXIT=" in pane:
            break
        time.sleep(2)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with (ARTEFACTS / "up-in-tmux-panes.txt").open("w") as out:
        for at, pane in panes:
            out.write(f"===== pane at {at} s =====\n{pane}\n")
    (ARTEFACTS / "up-in-tmux-final.txt").write_text(panes[-1][1] if panes else "")
    return panes


@pytest.fixture(scope="module")
def environment():
    require_binary("tmux", "ssh")
    env = make_environment((REPO_ROOT / "examples" / "local.yaml").read_text(), "opsux")
    socket = str(env.home / "tmux.socket")  # the environment's own directory: removed with it
    try:
        env.panes = _up_in_tmux(env, socket)
        yield env
    finally:
        try:
            _tmux(socket, "kill-server")
        finally:
            tear_down(env)


def test_up_on_a_terminal_finishes_with_every_node_up(environment):
    final = environment.panes[-1][1]
    assert "DRB-EXIT=0" in final, final


def test_the_heartbeat_updates_while_the_master_waits_for_its_services(environment):
    beats = [line.strip() for _, pane in environment.panes for line in pane.splitlines()
             if "waiting for" in line and ("services" in line or "puppet_ca" in line)]
    assert len(set(beats)) >= 2, "\n".join(beats) or environment.panes[-1][1]


def test_the_recap_names_every_node_the_slowest_steps_and_what_to_do_next(environment):
    final = environment.panes[-1][1]
    assert "Recap" in final and "time to recovery" in final and "slowest steps" in final, final
    assert all(name in final for name in NAMES)
    assert "next:" in final


def test_ping_by_the_environment_lists_exactly_the_spec_names(environment):
    done = environment.cli("ping", "-f", str(environment.spec_file), "--json", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    replies = json.loads(done.stdout)["replies"]
    assert sorted(reply["sender"] for reply in replies) == [f"{name}.{DOMAIN}" for name in NAMES]


def test_filters_still_narrow_an_environment_ping(environment):
    done = environment.cli("ping", "-f", str(environment.spec_file), "-I", "/^web/", "--json", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(r["sender"] for r in json.loads(done.stdout)["replies"]) == [f"web01.{DOMAIN}", f"web02.{DOMAIN}"]


def test_puppet_status_by_the_environment_answers_from_one_node(environment):
    done = environment.cli("puppet", "-f", str(environment.spec_file), "-I", f"db01.{DOMAIN}", "status", "--json",
                           timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert [r["sender"] for r in document["replies"]] == [f"db01.{DOMAIN}"] and document["schema_version"] == 1


def test_ssh_runs_a_command_on_web01_with_the_pinned_host_key(environment):
    done = environment.cli("ssh", str(environment.spec_file), "web01", "--", "hostname", "-f", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"web01.{DOMAIN}"


def test_ssh_passes_the_remote_exit_status_back(environment):
    done = environment.cli("ssh", str(environment.spec_file), "web01", "--", "exit", "3", timeout=120)
    assert done.returncode == 3, done.stderr


def test_logs_show_db01s_boot_log_agent_log_and_last_puppet_run(environment):
    done = environment.cli("logs", str(environment.spec_file), "db01", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "== db01: console" in out and "== db01: boot" in out and "drbootstrap worker boot:" in out
    assert "== db01: agent" in out and "== db01: puppet" in out and "resources:" in out


def test_logs_follow_streams_the_boot_log_until_stopped(environment):
    follow = environment.start("logs", str(environment.spec_file), "web02", "--log", "boot", "--follow")
    try:
        first = follow.stdout.readline()  # tail -F prints what is there, then waits for more
        assert first.startswith("drbootstrap worker boot:"), first
        assert follow.poll() is None  # still following
    finally:
        os.killpg(follow.pid, signal.SIGTERM)
        follow.wait(timeout=30)
    assert follow.poll() is not None


def test_plan_against_the_journal_and_the_cloud_has_nothing_left_to_do_and_no_orphan(environment):
    done = environment.cli("plan", str(environment.spec_file), "--cloud", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert all(p["complete"] for p in document["progress"])
    assert set(document["cloud"].values()) == {"running"} and document["orphans"] == []
