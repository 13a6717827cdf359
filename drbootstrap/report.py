"""The recovery report: JSON for machines and Markdown for people, saved beside the journal.

A timeline of every node's steps (from the journal, so a resumed run reports every step it took
across runs), time to recovery per step and overall, and the failed nodes with reason and log tail.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from drbootstrap.journal import Journal, StepState
from drbootstrap.paths import write_private_file
from drbootstrap.plan import Plan, Step, is_complete


class Outcome(Protocol):
    """How the run left one node (executor.run.NodeOutcome)."""

    role: str
    state: str
    step: str
    reason: str
    log_tail: str

    @property
    def ok(self) -> bool: ...


@dataclass(frozen=True)
class ReportPaths:
    json: Path
    markdown: Path


def build_report(journal: Journal, outcomes: Mapping[str, Outcome], *, run_started: float, run_finished: float,
                 plan: Plan) -> dict[str, Any]:
    """The report as data, every node of the plan in build order. A node is complete by the plan's
    one definition (plan.is_complete); the environment is recovered when every node is."""
    nodes_data = journal.data.nodes
    planned_nodes = plan.nodes()
    nodes = []
    starts, ends = [], []
    per_step: dict[str, list[float]] = {}
    spans: dict[str, list[float]] = {}
    for planned in planned_nodes:
        hostname = planned.hostname
        record = nodes_data.get(hostname)
        outcome = outcomes.get(hostname)
        steps = []
        for step, rec in sorted((record.steps.items() if record else []), key=lambda item: item[1].started_at):
            steps.append({"step": str(step), "state": str(rec.state), "started_at": rec.started_at,
                          "finished_at": rec.finished_at, "seconds": _round(rec.seconds), "detail": rec.detail})
            starts.append(rec.started_at)
            if rec.finished_at is not None:
                ends.append(rec.finished_at)
            if rec.state is StepState.DONE and rec.seconds is not None:
                finished_at = cast(float, rec.finished_at)  # seconds is None until finished_at is set
                per_step.setdefault(str(step), []).append(rec.seconds)
                span = spans.setdefault(str(step), [rec.started_at, finished_at])
                span[0], span[1] = min(span[0], rec.started_at), max(span[1], finished_at)
        nodes.append({
            "hostname": hostname, "role": record.role if record else getattr(outcome, "role", ""),
            "address": record.address if record else None, "provider_id": record.provider_id if record else None,
            "outcome": getattr(outcome, "state", "unknown"), "failed_step": getattr(outcome, "step", ""),
            "reason": getattr(outcome, "reason", ""), "complete": is_complete(record, planned), "steps": steps,
        })
    failed = [{"hostname": h, "role": o.role, "state": o.state, "step": o.step, "reason": o.reason,
               "log_tail": o.log_tail} for h, o in outcomes.items() if not o.ok]
    recovered = all(node["complete"] for node in nodes)
    step_order = [str(s) for s in Step]
    return {
        "environment": journal.data.environment,
        "generated_at": time.time(),
        "run": {"started_at": run_started, "finished_at": run_finished,
                "seconds": _round(run_finished - run_started)},
        "time_to_recovery_seconds": _round(max(ends) - min(starts)) if starts and ends and recovered else None,
        "recovery_span_seconds": _round(max(ends) - min(starts)) if starts and ends else None,
        "ok": not failed,  # the run did what was asked (with --until it may stop short of recovered)
        "recovered": recovered,  # every node complete
        "steps": {name: {"nodes": len(per_step[name]), "min": _round(min(per_step[name])),
                         "median": _round(statistics.median(per_step[name])), "max": _round(max(per_step[name])),
                         "span": _round(spans[name][1] - spans[name][0])}
                  for name in step_order if name in per_step},
        "failed": failed,
        "nodes": nodes,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def render_markdown(report: dict[str, Any]) -> str:
    """The human report: summary, time per step, failed nodes with their log tail, every node's timeline."""
    env = report["environment"]
    ttr = report["time_to_recovery_seconds"]
    lines = [f"# Recovery report: {env}", ""]
    failed_count = len(report["failed"])
    if not report["ok"]:
        outcome = f"PARTIAL: {failed_count} node(s) not recovered"
    else:
        outcome = "recovered" if report["recovered"] else "not recovered yet: stopped early (--until)"
    lines.append(f"- Outcome: {outcome}")
    lines.append(f"- Time to recovery: {_fmt(ttr) if ttr is not None else 'not recovered yet'}"
                 f" (first step to last, across runs: {_fmt(report['recovery_span_seconds'])})")
    lines.append(f"- This run: {_fmt(report['run']['seconds'])}, started {_when(report['run']['started_at'])}")
    lines += ["", "## Time per step", "", "| step | nodes | min | median | max | span (first start to last end) |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, figures in report["steps"].items():
        lines.append(f"| {name} | {figures['nodes']} | {_fmt(figures['min'])} | {_fmt(figures['median'])} | "
                     f"{_fmt(figures['max'])} | {_fmt(figures['span'])} |")
    if report["failed"]:
        lines += ["", "## Failed nodes", ""]
        for failure in report["failed"]:
            where = f" at {failure['step']}" if failure["step"] else ""
            lines.append(f"- **{failure['hostname']}** ({failure['state']}{where}): {failure['reason']}")
            if failure["log_tail"]:
                lines += ["", "  ```", *[f"  {line}" for line in failure["log_tail"].splitlines()[-20:]], "  ```", ""]
        lines.append("")
        lines.append("Retry just these: `drbootstrap up SPEC --only FAILED`")
    lines += ["", "## Timeline", ""]
    origin = min((s["started_at"] for n in report["nodes"] for s in n["steps"]), default=0.0)
    for node in report["nodes"]:
        lines += [f"### {node['hostname']} ({node['role']}, {node['address'] or 'no address'}): {node['outcome']}", "",
                  "| step | state | start (+s) | seconds | detail |", "| --- | --- | ---: | ---: | --- |"]
        for step in node["steps"]:
            detail = step["detail"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {step['step']} | {step['state']} | {step['started_at'] - origin:.1f} | "
                         f"{_fmt(step['seconds'])} | {detail} |")
        lines.append("")
    return "\n".join(lines)


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
    return f"{seconds:.1f} s"


def _when(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix))


def report_paths(journal: Journal) -> ReportPaths:
    return ReportPaths(journal.paths.report_json, journal.paths.report_markdown)


def write_report(report: dict[str, Any], journal: Journal) -> ReportPaths:
    """Save both forms beside the journal (0600 like it: they name the environment's nodes)."""
    paths = report_paths(journal)
    write_private_file(paths.json, json.dumps(report, indent=1, sort_keys=False) + "\n")
    write_private_file(paths.markdown, render_markdown(report) + "\n")
    return paths
