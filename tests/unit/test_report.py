"""The report: a timeline entry for every node and step, time per step and overall, failures, no secrets."""

from __future__ import annotations

import json

import pytest

from drbootstrap.executor import run_up
from drbootstrap.journal import Journal, NodeRecord, StepRecord, StepState
from drbootstrap.plan import Step, build_plan
from drbootstrap.report import build_report, render_html, render_markdown, write_report
from drbootstrap.report.critical_path import critical_path
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


def _journal_with(tmp_path, spec, durations: dict[str, dict[Step, tuple[float, float]]]) -> Journal:
    """A journal whose nodes did the given steps at the given (start, end) seconds."""
    journal = Journal.open(tmp_path, spec.environment)
    plan = build_plan(spec)
    roles = {node.hostname: node.role for node in plan.nodes()}
    for hostname, steps in durations.items():
        journal.data.nodes[hostname] = NodeRecord(hostname, roles[hostname], steps={
            step: StepRecord(StepState.DONE, 1000 + start, 1000 + end) for step, (start, end) in steps.items()})
    return journal


def _worker(launch_at: float, pre: float, gate_at: float, puppet: float) -> dict[Step, tuple[float, float]]:
    return {Step.LAUNCH: (launch_at, launch_at + pre), Step.PUPPET_SIGN: (gate_at, gate_at),
            Step.PUPPET_RUN: (gate_at, gate_at + puppet), Step.CHECKS: (gate_at + puppet, gate_at + puppet)}


def test_critical_path_is_master_to_the_puppet_ca_then_the_longest_after_chain(monkeypatch, tmp_path):
    spec = load_spec_text(monkeypatch)  # web after db; mail and db free
    master = {Step.LAUNCH: (0, 2), Step.BOOT: (2, 5), Step.SERVICES: (5, 6), Step.DISCOVER: (6, 7),
              Step.PUPPET_CA: (7, 20)}
    journal = _journal_with(tmp_path, spec, {
        "controller": master, "db01": _worker(7, 5, 20, 30), "web01": _worker(7, 5, 50, 10),
        "web02": _worker(7, 5, 50, 12), "mail01": _worker(7, 40, 47, 5)})
    path = critical_path(journal, build_plan(spec))
    assert path.seconds == pytest.approx(20 + 30 + 12)
    assert [link.node for link in path.chain] == ["controller", "db01", "web02"]
    assert path.chain[0].steps == ("launch", "boot", "services", "discover", "puppet_ca")


def test_critical_path_counts_a_worker_whose_own_boot_outlasts_the_puppet_ca(monkeypatch, tmp_path):
    spec = load_spec_text(monkeypatch)
    master = {Step.LAUNCH: (0, 1), Step.DISCOVER: (1, 2), Step.PUPPET_CA: (2, 10)}
    journal = _journal_with(tmp_path, spec, {"controller": master, "mail01": _worker(2, 60, 62, 5)})
    path = critical_path(journal, build_plan(spec))
    assert path.seconds == pytest.approx(2 + 60 + 5)
    assert [(link.node, link.steps) for link in path.chain] == [
        ("controller", ("launch", "discover")), ("mail01", ("launch", "puppet_sign", "puppet_run", "checks"))]


def test_report_states_wall_over_critical_path_and_the_rto_verdict_in_every_form(monkeypatch, tmp_path):
    _, journal, _ = _run(monkeypatch, tmp_path)
    spec = load_spec_text(monkeypatch)
    report = build_report(journal, {}, run_started=0, run_finished=1, plan=build_plan(spec), rto_seconds=1800)
    assert report["critical_path_seconds"] > 0 and report["wall_over_critical_path"] >= 1.0
    assert report["rto"] == {"target_seconds": 1800, "met": True}
    markdown = render_markdown(report)
    assert "Critical path:" in markdown and "wall time / critical path =" in markdown
    assert "RTO target 30 min 0 s (drill.rto_minutes): met" in markdown
    assert "| step | nodes | min | median | max | time spent (all nodes) |" in markdown
    html = render_html(report)
    assert "RTO target 30 min 0 s (drill.rto_minutes): met" in html and "http" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in html


def test_markdown_has_a_mermaid_gantt_with_a_bar_per_step_and_the_critical_path_marked(monkeypatch, tmp_path):
    _, _, report = _run(monkeypatch, tmp_path)
    markdown = render_markdown(report)
    block = markdown.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert block.startswith("gantt\n") and "dateFormat x" in block
    sections = [line.split()[-1] for line in block.splitlines() if line.strip().startswith("section ")]
    assert sections == ["controller", "db01", "mail01", "web01", "web02"]
    bars = [line for line in block.splitlines() if " :" in line and "title" not in line]
    assert len(bars) == sum(len(node["steps"]) for node in report["nodes"])
    assert any(":crit, " in line for line in bars)


def test_html_report_escapes_what_it_shows_and_draws_a_bar_per_step(monkeypatch, tmp_path):
    _, _, report = _run(monkeypatch, tmp_path)
    report["nodes"][1]["steps"][0]["detail"] = "<script>alert(1)</script>"
    html = render_html(report)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count('<rect class="bar ') == sum(len(node["steps"]) for node in report["nodes"])


def test_a_puppet_run_that_applied_changes_reads_so_not_as_an_exit_code(monkeypatch, tmp_path):
    _, journal, report = _run(monkeypatch, tmp_path)
    details = [s["detail"] for n in report["nodes"] for s in n["steps"] if s["step"] == "puppet_run"]
    assert details and all(d.startswith(("applied changes in", "no changes in")) for d in details)
    assert not any("exit" in d for d in details)
