"""The puppet agent's command lines, lockfile handling and status (no Puppet run here)."""

from __future__ import annotations

import json
import time

import pytest

from drbootstrap.agent.actions.puppet import PuppetAgent
from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.facts import NodeFacts
from drbootstrap.agent.registry import ActionFailed, AgentContext
from drbootstrap.messaging.envelope import Request, StatusCode


def agent(tmp_path, **puppet) -> PuppetAgent:
    settings = {"confdir": str(tmp_path / "conf"), "vardir": str(tmp_path / "var"), **puppet}
    config = agent_config_from_dict({"identity": "web01", "puppet": settings})
    return PuppetAgent(AgentContext(config, NodeFacts("web01")))


REQUEST = Request("r", "c", "key=psk", "puppet", "x", created_at=time.time())


def test_apply_mode_command_has_per_node_dirs_manifest_and_options(tmp_path):
    command = agent(tmp_path, mode="apply", manifest="/m/site.pp", modulepath="/m/modules").command(noop=True, tags="a,b")
    assert command[:2] == ["puppet", "apply"] and command[-1] == "/m/site.pp"
    for flag in ("--confdir=", "--vardir=", "--ssldir=", "--rundir=", "--logdir=", "--lastrunfile="):
        assert any(part.startswith(flag) for part in command)
    assert "--noop" in command and "--tags=a,b" in command and "--modulepath=/m/modules" in command


def test_server_mode_command_runs_the_agent_once_against_the_server(tmp_path):
    command = agent(tmp_path, mode="server", server="master.demo", environment="prod", server_port=8141,
                    waitforcert=0).command()
    assert "--serverport=8141" in command and "--waitforcert=0" in command
    assert command[:5] == ["puppet", "agent", "--onetime", "--no-daemonize", "--no-splay"]
    assert "--server=master.demo" in command and "--certname=web01" in command and "--environment=prod" in command


def test_disable_writes_puppets_own_lockfile_and_runonce_then_refuses(tmp_path):
    puppet = agent(tmp_path, mode="apply", manifest="/nonexistent.pp")
    puppet.disable(REQUEST, {"message": "maintenance"})
    lock = tmp_path / "var" / "state" / "agent_disabled.lock"
    assert json.loads(lock.read_text()) == {"disabled_message": "maintenance"}
    status = puppet.status(REQUEST, {})
    assert (status["enabled"], status["status"], status["disabled_message"]) == (False, "disabled", "maintenance")
    with pytest.raises(ActionFailed) as refused:
        puppet.runonce(REQUEST, {})
    assert refused.value.status == StatusCode.ABORTED and "maintenance" in refused.value.message
    assert puppet.enable(REQUEST, {}) == {"enabled": True, "was_disabled": True}
    assert not lock.exists()


def test_status_reads_last_run_summary(tmp_path):
    puppet = agent(tmp_path)
    state = tmp_path / "var" / "state"
    state.mkdir(parents=True)
    (state / "last_run_summary.yaml").write_text(f"time:\n  last_run: {int(time.time()) - 5}\nevents:\n  failure: 0\n")
    status = puppet.status(REQUEST, {})
    assert status["status"] == "idling" and 0 <= status["since_lastrun"] < 60
    assert puppet.last_run_summary(REQUEST, {})["summary"]["events"] == {"failure": 0}


def test_server_mode_command_waits_for_a_run_that_holds_puppets_lock(tmp_path):
    command = agent(tmp_path, mode="server", server="master.demo").command()
    assert "--waitforlock=1" in command and any(part.startswith("--maxwaitforlock=") for part in command)


SUMMARY = "time:\n  last_run: {now}\nresources:\n  changed: 3\n  failed: 0\nevents:\n  failure: 0\n"


def test_runonce_while_a_run_of_this_agent_is_in_flight_waits_and_adopts_its_result(tmp_path):
    import threading

    from drbootstrap.agent.actions.puppet import _run_lock

    puppet = agent(tmp_path, mode="apply", manifest="/nonexistent.pp")
    state = tmp_path / "var" / "state"
    state.mkdir(parents=True)
    in_flight = _run_lock(str(tmp_path / "var"))
    in_flight.acquire()  # stands for the run an earlier caller (a killed `up`) asked for

    def finish() -> None:
        time.sleep(0.6)
        (state / "last_run_summary.yaml").write_text(SUMMARY.format(now=int(time.time())))
        in_flight.release()

    threading.Thread(target=finish).start()
    result = puppet.runonce(REQUEST, {"force": True})
    assert result["adopted"] is True and result["exitcode"] == 2 and result["changed"] and not result["failed"]


def test_runonce_while_another_process_holds_puppets_run_lock_waits_and_adopts(tmp_path):
    import subprocess
    import sys

    puppet = agent(tmp_path, mode="server", server="master.demo", binary="/nonexistent/puppet")
    state = tmp_path / "var" / "state"
    state.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (state / "agent_catalog_run.lock").write_text(str(other.pid))
        import threading

        def finish() -> None:
            time.sleep(0.6)
            failing = SUMMARY.replace("failure: 0", "failure: 1").format(now=int(time.time()))
            (state / "last_run_summary.yaml").write_text(failing)
            other.kill()
            other.wait()  # reaped, as Puppet's parent reaps it

        threading.Thread(target=finish).start()
        with pytest.raises(ActionFailed) as failed:
            puppet.runonce(REQUEST, {"force": True})
        assert "in flight failed" in failed.value.message and failed.value.data["exitcode"] == 6
    finally:
        other.kill()
        other.wait()


def test_result_from_summary_gives_puppets_detailed_exit_codes():
    from drbootstrap.agent.actions.puppet import result_from_summary

    assert result_from_summary({"resources": {"changed": 0}}, 1.0)["exitcode"] == 0
    assert result_from_summary({"resources": {"changed": 1}}, 1.0)["exitcode"] == 2
    assert result_from_summary({"resources": {"failed": 1}}, 1.0)["exitcode"] == 4
