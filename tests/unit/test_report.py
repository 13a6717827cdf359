"""The report: a timeline entry for every node and step, time per step and overall, failures, no secrets."""

from __future__ import annotations

import json

from drbootstrap.executor import run_up
from drbootstrap.journal import Journal
from drbootstrap.report import build_report, render_markdown, write_report
from tests.unit.executor_fakes import (
    PSK,
    FakeAccess,
    FakeBroker,
    FakeCloud,
    load_spec_text,
    make_context,
)


def _run(monkeypatch, tmp_path, *, fail_boot=()):
    spec = load_spec_text(monkeypatch)
    cloud = FakeCloud()
    cloud.fail_boot.update(fail_boot)
    ctx = make_context(spec, tmp_path, cloud, FakeBroker(cloud), FakeAccess())
    result = run_up(ctx)
    journal = Journal.open(tmp_path, "demo")
    return result, journal, build_report(journal, result.outcomes, run_started=result.started_at,
                                         run_finished=result.finished_at, plan=ctx.plan)


def test_report_has_a_timeline_entry_for_every_node_and_step(monkeypatch, tmp_path):
    _, journal, report = _run(monkeypatch, tmp_path)
    assert [n["hostname"] for n in report["nodes"]] == ["controller", "db01", "mail01", "web01", "web02"]
    for node in report["nodes"]:
        expected = set(journal.data.nodes[node["hostname"]].steps)
        assert {s["step"] for s in node["steps"]} == expected and expected
        assert all(s["seconds"] is not None for s in node["steps"])
    assert {"launch", "boot", "services", "puppet_run", "checks"} <= set(report["steps"])
    assert report["ok"] and report["time_to_recovery_seconds"] is not None


def test_report_of_a_partial_run_lists_failed_nodes_with_log_tail_and_no_recovery_time(monkeypatch, tmp_path):
    _, _, report = _run(monkeypatch, tmp_path, fail_boot={"mail01"})
    assert not report["ok"] and report["time_to_recovery_seconds"] is None
    assert [f["hostname"] for f in report["failed"]] == ["mail01"]
    assert "exit 1" in report["failed"][0]["log_tail"]
    markdown = render_markdown(report)
    assert "## Failed nodes" in markdown and "**mail01**" in markdown and "--only FAILED" in markdown


def test_markdown_report_shows_per_step_times_and_every_node(monkeypatch, tmp_path):
    _, _, report = _run(monkeypatch, tmp_path)
    markdown = render_markdown(report)
    assert "## Time per step" in markdown and "| puppet_run |" in markdown
    for hostname in ("controller", "db01", "web01", "web02", "mail01"):
        assert f"### {hostname} (" in markdown


def test_report_files_sit_beside_the_journal_private_and_free_of_the_psk(monkeypatch, tmp_path):
    _, journal, report = _run(monkeypatch, tmp_path)
    paths = write_report(report, journal)
    assert paths.json.parent == journal.path.parent == paths.markdown.parent
    assert oct(paths.json.stat().st_mode & 0o777) == "0o600"
    assert json.loads(paths.json.read_text())["environment"] == "demo"
    assert PSK not in paths.json.read_text() and PSK not in paths.markdown.read_text()
