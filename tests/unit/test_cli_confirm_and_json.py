"""Destructive commands list, ask or refuse alike; JSON output carries a schema version."""

from __future__ import annotations

import json

from drbootstrap.cli.output import SCHEMA_VERSION
from drbootstrap.exit_status import ExitStatus
from tests.unit.test_run_cli import fake_up  # noqa: F401 - the fixture


def test_local_cleanup_without_a_terminal_and_without_yes_refuses_in_one_line(cli, tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr("drbootstrap.providers.local.cleanup.cleanup_everything", lambda d: called.append(d))
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    result = cli("local", "cleanup", "--state-dir", str(tmp_path))
    assert called == [] and result.exit_code == ExitStatus.NOT_CONFIRMED
    assert result.stderr.count("\n") == 1 and "nothing changed" in result.stderr and "--yes" in result.stderr


def test_local_cleanup_on_a_terminal_lists_and_asks_and_a_no_removes_nothing(cli, tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr("drbootstrap.providers.local.cleanup.cleanup_everything", lambda d: called.append(d))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("click.confirm", lambda *a, **k: False)
    result = cli("local", "cleanup", "--state-dir", str(tmp_path))
    assert called == [] and result.exit_code == ExitStatus.NOT_CONFIRMED
    assert "will remove 0 node(s)" in result.stdout


def test_up_redo_launch_without_a_terminal_refuses_and_replaces_nothing(cli, fake_up, monkeypatch):
    spec_file, _, state = fake_up
    assert cli("up", str(spec_file), "--state-dir", str(state), "--plain").exit_code == 0
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    journal = (state / "environments").glob("*/journal.json")
    before = [path.read_text() for path in journal]
    result = cli("up", str(spec_file), "--state-dir", str(state), "--redo", "launch", "--plain")
    assert result.exit_code == ExitStatus.NOT_CONFIRMED and result.stderr.count("\n") == 1
    assert "nothing replaced" in result.stderr
    assert [path.read_text() for path in (state / "environments").glob("*/journal.json")] == before


def test_up_redo_launch_on_a_terminal_names_the_nodes_it_replaces(cli, fake_up, monkeypatch):
    spec_file, _, state = fake_up
    cli("up", str(spec_file), "--state-dir", str(state), "--plain")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("click.confirm", lambda *a, **k: False)
    result = cli("up", str(spec_file), "--state-dir", str(state), "--redo", "launch", "--only", "mail01")
    assert result.exit_code == ExitStatus.NOT_CONFIRMED
    assert "replace 1 node(s) (mail01)" in result.stdout


def test_down_json_reports_what_went_with_a_schema_version(cli, fake_up):
    spec_file, _, state = fake_up
    cli("up", str(spec_file), "--state-dir", str(state), "--plain")
    result = cli("down", str(spec_file), "--state-dir", str(state), "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema_version"] == SCHEMA_VERSION and "destroyed" in document


def test_local_status_json_has_a_schema_version_and_the_nodes(cli, tmp_path):
    result = cli("local", "status", "--state-dir", str(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema_version"] == SCHEMA_VERSION and document["nodes"] == []


def test_status_watch_json_prints_one_line_per_round_and_exits_with_the_last(cli, tmp_path, monkeypatch):
    from drbootstrap.executor.lifecycle import EnvironmentStatus, NodeStatus
    from tests.unit.executor_fakes import SPEC, load_spec_text

    spec_file = tmp_path / "env.yaml"
    spec_file.write_text(SPEC)
    load_spec_text(monkeypatch)
    rounds = iter([[NodeStatus("db01", "db", cloud_state="running")], [NodeStatus("db01", "db")]])
    monkeypatch.setattr("drbootstrap.executor.status",
                        lambda spec, state_dir, ping, **where: EnvironmentStatus("demo", nodes=next(rounds)))
    result = cli("status", str(spec_file), "--watch", "--interval", "0.5", "--rounds", "2", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["problems"] for line in lines] == [[], ["db01: absent in the cloud"]]
    assert all(line["schema_version"] == SCHEMA_VERSION for line in lines)
    assert result.exit_code == ExitStatus.PARTIAL
