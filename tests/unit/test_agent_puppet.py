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
