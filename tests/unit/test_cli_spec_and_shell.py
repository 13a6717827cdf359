"""validate --json, plan against the journal, schema, completion, --debug after the subcommand,
examples in every command's help, and the environment options of the client commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from drbootstrap.cli.main import COMMANDS
from drbootstrap.cli.output import SCHEMA_VERSION
from drbootstrap.exit_status import ExitStatus
from tests.support.prereq import REPO_ROOT
from tests.unit.test_run_cli import fake_up  # noqa: F401 - the fixture

EXAMPLE = str(REPO_ROOT / "examples" / "local.yaml")


def test_validate_json_says_valid_with_the_node_count(cli):
    result = cli("validate", EXAMPLE, "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema_version"] == SCHEMA_VERSION and document["valid"] is True and document["nodes"] == 5


def test_validate_json_of_a_broken_spec_lists_the_problems_and_exits_3(cli, tmp_path):
    spec = tmp_path / "env.yaml"
    spec.write_text("environment: demo\n")
    result = cli("validate", str(spec), "--json")
    assert result.exit_code == ExitStatus.INVALID_SPEC
    document = json.loads(result.stdout)
    assert document["valid"] is False and document["problems"]


def test_plan_against_the_journal_says_what_is_done_and_what_is_missing(cli, fake_up):
    spec_file, cloud, state = fake_up
    cloud.fail_boot.add("mail01")
    cli("up", str(spec_file), "--state-dir", str(state), "--plain")
    result = cli("plan", str(spec_file), "--state-dir", str(state), "--json")
    assert result.exit_code == 0, result.stderr
    progress = {p["hostname"]: p for p in json.loads(result.stdout)["progress"]}
    assert progress["db01"]["complete"] and progress["db01"]["missing_steps"] == []
    assert not progress["mail01"]["complete"] and "boot" in progress["mail01"]["missing_steps"]
    assert "launch" in progress["mail01"]["done_steps"]
    table = cli("plan", str(spec_file), "--state-dir", str(state))
    assert "boot (+" in table.stdout and "complete" in table.stdout


def test_plan_without_a_journal_has_every_step_to_do(cli, tmp_path):
    result = cli("plan", EXAMPLE, "--state-dir", str(tmp_path), "--json")
    document = json.loads(result.stdout)
    assert document["journal"] is None and not any(p["done_steps"] for p in document["progress"])


def test_schema_prints_the_json_schema_of_the_spec_models(cli):
    result = cli("schema")
    assert result.exit_code == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"environment", "domain", "provider"} <= set(schema["required"])
    assert schema["additionalProperties"] is False and "BrokerSpec" in schema["$defs"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_clicks_script_for_the_shell(cli, shell):
    result = cli("completion", shell)
    assert result.exit_code == 0 and "_DRBOOTSTRAP_COMPLETE" in result.stdout


def test_only_completes_the_hostnames_of_the_spec_on_the_command_line():
    env = {**os.environ, "_DRBOOTSTRAP_COMPLETE": "bash_complete", "COMP_WORDS": f"drbootstrap up {EXAMPLE} --only we",
           "COMP_CWORD": "4"}
    done = subprocess.run([sys.executable, "-m", "drbootstrap"], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert "plain,web01" in done.stdout and "plain,web02" in done.stdout and "db01" not in done.stdout, done


def test_debug_is_accepted_after_the_subcommand(cli, tmp_path):
    spec = tmp_path / "env.yaml"
    spec.write_text("environment: demo\n")
    result = cli("validate", str(spec), "--debug")
    assert result.exit_code == ExitStatus.INVALID_SPEC and "Traceback" in result.stderr


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_help_shows_examples(cli, name):
    result = cli(name, "--help")
    assert result.exit_code == 0 and "Examples:" in result.stdout, result.stdout


def test_ping_with_an_environment_that_was_never_up_says_so_in_one_line(cli, tmp_path):
    result = cli("ping", "-f", EXAMPLE, "--state-dir", str(tmp_path))
    assert result.exit_code == ExitStatus.NOT_FOUND
    assert result.stderr.count("\n") == 1 and "drbootstrap up" in result.stderr


def test_ssh_to_a_node_not_in_the_spec_names_those_that_are(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("drbootstrap.executor.build.provider_for", lambda *a, **k: None)
    result = cli("ssh", EXAMPLE, "nosuch", "--state-dir", str(tmp_path), "--", "hostname")
    assert result.exit_code == ExitStatus.NOT_FOUND and "web01" in result.stderr


def test_plan_with_cloud_shows_each_nodes_cloud_state_and_the_orphans(cli, tmp_path, monkeypatch):
    from drbootstrap.executor.lifecycle import EnvironmentStatus, NodeStatus

    found = EnvironmentStatus("demo", nodes=[NodeStatus("controller", "master", cloud_state="running")],
                              orphans=["old01"])
    monkeypatch.setattr("drbootstrap.executor.status", lambda spec, state, ping: found)
    result = cli("plan", EXAMPLE, "--state-dir", str(tmp_path), "--cloud", "--json")
    document = json.loads(result.stdout)
    assert document["cloud"] == {"controller": "running"} and document["orphans"] == ["old01"]
    table = cli("plan", EXAMPLE, "--state-dir", str(tmp_path), "--cloud")
    assert "orphans (tagged for demo in the cloud, not in the spec): old01" in table.stdout


def test_the_openssh_command_trusts_only_the_pinned_host_key_and_offers_only_the_operator_key(tmp_path):
    from drbootstrap.ssh import PinnedHostKey, SshTarget, known_hosts_text, openssh_argv

    target = SshTarget("10.0.0.5", (PinnedHostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIE"),),
                       tmp_path / "ssh-key.pem", name="web01")
    assert known_hosts_text(target) == "drbootstrap-web01 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE\n"
    argv = openssh_argv(target, tmp_path / "known_hosts", "hostname -f")
    assert argv[-2:] == ["root@10.0.0.5", "hostname -f"]
    options = " ".join(argv)
    assert "StrictHostKeyChecking=yes" in options and f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in options
    assert "HostKeyAlias=drbootstrap-web01" in options and "IdentitiesOnly=yes" in options
    assert "GlobalKnownHostsFile=/dev/null" in options
