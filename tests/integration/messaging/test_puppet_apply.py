"""puppet runonce with a real Puppet agent (mode apply, per-node dirs), status, disable/enable, summary."""

from __future__ import annotations

import json
import secrets

import pytest

from drbootstrap.agent.daemon import run_agents
from drbootstrap.messaging.envelope import StatusCode
from tests.integration.messaging.conftest import node_config
from tests.support.prereq import require_binary, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def puppet_node(fleet):
    require_binary("puppet")
    identity = f"pp-{secrets.token_hex(3)}"
    node_dir = fleet.work / identity
    (node_dir / "modules" / "motd" / "manifests").mkdir(parents=True)
    target = node_dir / "applied.txt"
    (node_dir / "modules" / "motd" / "manifests" / "init.pp").write_text(
        "class motd($text) {\n  file { '%s': ensure => file, content => $text, tag => ['motd'] }\n}\n" % target
    )
    (node_dir / "site.pp").write_text(
        "class { 'motd': text => \"hello from ${facts['networking']['hostname']}\\n\" }\n"
    )
    config = node_config(fleet.work, fleet.broker_url, fleet.key_file, identity, puppet={
        "mode": "apply", "manifest": str(node_dir / "site.pp"), "modulepath": str(node_dir / "modules"),
        "confdir": str(node_dir / "puppet"), "vardir": str(node_dir / "puppet-var"), "timeout": 300,
    })
    servers = run_agents([config], wait=20)
    try:
        yield identity, target
    finally:
        servers[0].stop()


def call(fleet, identity, action, data=None):
    with fleet.client(timeout=300) as client:
        result = client.call("puppet", action, data or {}, targets=[identity])
    assert result.responded == [identity]
    return result.replies[0]


def test_noop_runonce_changes_nothing(fleet, puppet_node):
    identity, target = puppet_node
    reply = call(fleet, identity, "runonce", {"noop": True, "force": True})
    assert reply.status_code == StatusCode.OK, reply.data.get("output")
    assert not target.exists()


def test_runonce_applies_the_manifest_and_status_reports_the_run(fleet, puppet_node):
    identity, target = puppet_node
    reply = call(fleet, identity, "runonce", {"force": True, "tags": "motd"})
    assert reply.status_code == StatusCode.OK, reply.data.get("output")
    assert reply.data["changed"] is True and target.read_text().startswith("hello from ")
    status = call(fleet, identity, "status")
    assert status.data["enabled"] is True and status.data["lastrun"] > 0
    summary = call(fleet, identity, "last_run_summary").data["summary"]
    assert summary["resources"]["changed"] >= 1


def test_disabled_puppet_refuses_runonce_until_enabled(fleet, puppet_node):
    identity, target = puppet_node
    target.unlink(missing_ok=True)
    cli = run_cli("puppet", "disable", "--message", "drill in progress", "--broker", fleet.broker_url,
                  "--key-file", str(fleet.key_file), "--expect", identity, "--direct", "--json")
    assert cli.exit_code == 0, cli.stderr
    assert json.loads(cli.stdout)["replies"][0]["data"]["disabled_message"] == "drill in progress"
    refused = call(fleet, identity, "runonce", {"force": True})
    assert refused.status_code == StatusCode.ABORTED and "drill in progress" in refused.status_message
    assert not target.exists()
    assert call(fleet, identity, "status").data["disabled_message"] == "drill in progress"
    assert call(fleet, identity, "enable").data == {"enabled": True, "was_disabled": True}
    assert call(fleet, identity, "status").data["status"] == "idling"
