"""The `up`, `status` and `down` commands render what the executor reports and exit with its status."""

from __future__ import annotations

import json

import pytest

from drbootstrap.executor import lifecycle, run_up
from drbootstrap.exit_status import ExitStatus
from drbootstrap.report import build_report, write_report
from tests.unit.executor_fakes import (
    SPEC,
    FakeAccess,
    FakeBroker,
    FakeCloud,
    load_spec_text,
    make_context,
)


@pytest.fixture
def fake_up(monkeypatch, tmp_path):
    """`drbootstrap up` wired to the fake cloud; returns (spec file, cloud)."""
    spec_file = tmp_path / "env.yaml"
    spec_file.write_text(SPEC)
    cloud = FakeCloud()
    broker = FakeBroker(cloud)
    load_spec_text(monkeypatch)

    def fake(spec, state_dir, *, options=None, emit=lambda e: None, plan=None, **_state):
        ctx = make_context(spec, state_dir, cloud, broker, FakeAccess(), options=options)
        ctx.emit = emit
        result = run_up(ctx)
        report = build_report(ctx.journal, result.outcomes, run_started=result.started_at,
                              run_finished=result.finished_at, plan=ctx.plan, rto_seconds=1800)
        return result, write_report(report, ctx.journal)

    monkeypatch.setattr(lifecycle, "up", fake)
    monkeypatch.setattr("drbootstrap.executor.up", fake)
    return spec_file, cloud, tmp_path / "state"


def test_up_json_prints_one_event_per_line_then_the_result(cli, fake_up):
    spec_file, _, state = fake_up
    result = cli("up", str(spec_file), "--state-dir", str(state), "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"event", "node", "step", "state", "elapsed"} <= set(lines[0])
    assert lines[-1]["event"] == "result" and lines[-1]["failed"] == []
    assert lines[-1]["critical_path_seconds"] > 0 and lines[-1]["wall_over_critical_path"] >= 1.0
    assert lines[-1]["rto_met"] is True and lines[-1]["report_html"].endswith("report.html")


def test_up_says_the_critical_path_and_the_rto_verdict_when_done(cli, fake_up):
    spec_file, _, state = fake_up
    result = cli("up", str(spec_file), "--state-dir", str(state), "--plain")
    assert result.exit_code == 0, result.stdout + result.stderr
    last = result.stdout.splitlines()[-1]
    assert "critical path" in last and "wall / critical path" in last and "RTO target met" in last


def test_up_with_a_failed_node_exits_partial_and_names_it(cli, fake_up):
    spec_file, cloud, state = fake_up
    cloud.fail_boot.add("mail01")
    result = cli("up", str(spec_file), "--state-dir", str(state))
    assert result.exit_code == 7
    assert "mail01 failed at boot" in result.stdout and "--only FAILED" in result.stdout


def test_up_only_failed_retries_just_the_incomplete_nodes(cli, fake_up):
    spec_file, cloud, state = fake_up
    cloud.fail_boot.add("mail01")
    cli("up", str(spec_file), "--state-dir", str(state))
    cloud.fail_boot.clear()
    result = cli("up", str(spec_file), "--state-dir", str(state), "--only", "FAILED", "--plain")
    assert result.exit_code == 0, result.stdout + result.stderr
    ran = {line.split("] ", 1)[1].split()[0] for line in result.stdout.splitlines()
           if line.split(": ", 1)[0].endswith(" running")}
    assert ran == {"mail01"}


def test_up_only_with_an_unknown_name_is_a_one_line_error(cli, fake_up):
    spec_file, _, state = fake_up
    result = cli("up", str(spec_file), "--state-dir", str(state), "--only", "nosuch")
    assert result.exit_code == 1 and "nosuch" in result.stderr and "FAILED" in result.stderr


def test_down_without_yes_lists_what_goes_asks_and_destroys_nothing_when_refused(cli, fake_up, monkeypatch):
    spec_file, _, state = fake_up
    called = []
    monkeypatch.setattr("drbootstrap.executor.down", lambda *a, **k: called.append(a))
    monkeypatch.setattr("click.confirm", lambda *a, **k: False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    result = cli("down", str(spec_file), "--state-dir", str(state))
    assert called == [] and "nothing destroyed" in result.stdout
    assert result.exit_code == ExitStatus.NOT_CONFIRMED
    assert "will destroy" in result.stdout


def test_down_without_yes_and_without_a_terminal_refuses_in_one_line(cli, fake_up, monkeypatch):
    spec_file, _, state = fake_up
    called = []
    monkeypatch.setattr("drbootstrap.executor.down", lambda *a, **k: called.append(a))
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    result = cli("down", str(spec_file), "--state-dir", str(state))
    assert called == [] and result.exit_code == ExitStatus.NOT_CONFIRMED
    assert result.stderr.count("\n") == 1 and "nothing destroyed" in result.stderr and "--yes" in result.stderr


def test_status_problems_name_nodes_down_failed_or_silent_and_not_the_merely_incomplete():
    from drbootstrap.executor.lifecycle import EnvironmentStatus, NodeStatus

    status = EnvironmentStatus("demo", nodes=[
        NodeStatus("controller", "master", cloud_state="running", last_step="puppet_ca done", agent="answers"),
        NodeStatus("db01", "db", cloud_state="running", last_step="launch done", agent="unknown"),
        NodeStatus("web01", "web", cloud_state="running", last_step="puppet_run failed", agent="answers"),
        NodeStatus("web02", "web", cloud_state="absent"),
        NodeStatus("mail01", "mail", cloud_state="running", last_step="checks done", agent="silent"),
    ])
    assert status.problems == ["web01: puppet_run failed", "web02: absent in the cloud",
                               "mail01: its agent is silent"]


def test_live_table_shows_each_node_with_its_role_address_state_and_step():
    import io

    from rich.console import Console

    from drbootstrap.cli.run_commands import LiveTable
    from drbootstrap.executor.events import Event

    out = io.StringIO()
    table = LiveTable(Console(file=out, width=120, force_terminal=True))
    with table:
        table.event(Event("db01", "boot", "running", 1.0, role="db", address="10.0.0.2"))
        table.event(Event("web01", "", "blocked", 2.0, "waits for db01", role="web"))
        table.event(Event("", "cloud", "retry", 2.5, "launch web02: throttled, retrying in 1.0 s"))
    text = out.getvalue()
    assert "db01" in text and "10.0.0.2" in text and "boot" in text and "blocked" in text
    assert "throttled" in text


# ---- status: the Puppet column for a person --------------------------------------------------

NOW = 1_795_313_500.0


def test_puppet_status_idle_and_enabled_reads_as_idle_enabled_and_last_run_age():
    data = {"applying": False, "enabled": True, "lastrun": int(NOW) - 180, "status": "idling"}
    assert lifecycle.describe_puppet_status(data, NOW) == "idle, enabled, last run 3 min ago"


def test_puppet_status_disabled_names_the_lock_message():
    data = {"applying": False, "enabled": False, "lastrun": int(NOW) - 60, "status": "disabled",
            "disable_message": "maintenance by ops"}
    assert lifecycle.describe_puppet_status(data, NOW) == "disabled: maintenance by ops"


def test_puppet_status_applying_and_never_run():
    data = {"applying": True, "enabled": True, "lastrun": 0, "status": "applying a catalog"}
    assert lifecycle.describe_puppet_status(data, NOW) == "applying, enabled, never run"


def test_status_json_keeps_the_raw_puppet_fields(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from drbootstrap.cli.run_commands import status

    raw = {"applying": False, "enabled": True, "lastrun": 1795313312, "status": "idling"}
    node = lifecycle.NodeStatus(hostname="web01", role="worker", agent="answers",
                                puppet=lifecycle.describe_puppet_status(raw, NOW), puppet_status=raw)
    fake = lifecycle.EnvironmentStatus(environment="demo", nodes=[node])
    monkeypatch.setattr("drbootstrap.executor.status", lambda spec, state_dir, ping=True, **_state: fake)
    load_spec_text(monkeypatch)
    spec_file = tmp_path / "env.yaml"
    spec_file.write_text(SPEC)
    out = CliRunner().invoke(status, [str(spec_file), "--json", "--state-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    printed = json.loads(out.output)["nodes"][0]
    assert printed["puppet_status"] == raw and printed["puppet"].startswith("idle, enabled, last run")
