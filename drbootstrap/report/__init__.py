"""The recovery report: JSON for machines, Markdown and a self-contained HTML page for people,
saved beside the journal. data builds it from the journal, critical_path finds the chain that
bounds the run, markdown and html render it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drbootstrap.journal import Journal
from drbootstrap.paths import write_private_file
from drbootstrap.report.data import Outcome, build_report
from drbootstrap.report.html import render_html
from drbootstrap.report.markdown import render_markdown


@dataclass(frozen=True)
class ReportFigures:
    """The headline figures of a report, for the CLI's closing line and its --json result."""

    wall_seconds: float | None = None  # first step to last, across runs
    critical_path_seconds: float | None = None
    wall_over_critical_path: float | None = None
    rto_target_seconds: float | None = None
    rto_met: bool | None = None
    time_to_recovery_seconds: float | None = None  # None: not every node is complete
    slowest_steps: tuple[tuple[str, str, float], ...] = ()  # (hostname, step, seconds), slowest first

    @classmethod
    def of(cls, report: dict[str, Any], slowest: int = 3) -> ReportFigures:
        timed = sorted(((node["hostname"], step["step"], step["seconds"]) for node in report["nodes"]
                        for step in node["steps"] if step["seconds"] is not None and step["state"] == "done"),
                       key=lambda item: -item[2])
        return cls(report["recovery_span_seconds"], report["critical_path_seconds"],
                   report["wall_over_critical_path"], report["rto"]["target_seconds"], report["rto"]["met"],
                   report["time_to_recovery_seconds"], tuple(timed[:slowest]))


@dataclass(frozen=True)
class ReportPaths:
    json: Path
    markdown: Path
    html: Path | None = None
    figures: ReportFigures = field(default_factory=ReportFigures)


def report_paths(journal: Journal) -> ReportPaths:
    return ReportPaths(journal.paths.report_json, journal.paths.report_markdown, journal.paths.report_html)


def write_report(report: dict[str, Any], journal: Journal) -> ReportPaths:
    """Save every form beside the journal (0600 like it: they name the environment's nodes)."""
    paths = report_paths(journal)
    write_private_file(paths.json, json.dumps(report, indent=1, sort_keys=False) + "\n")
    write_private_file(paths.markdown, render_markdown(report) + "\n")
    assert paths.html is not None
    write_private_file(paths.html, render_html(report) + "\n")
    return ReportPaths(paths.json, paths.markdown, paths.html, ReportFigures.of(report))


__all__ = ["Outcome", "ReportFigures", "ReportPaths", "build_report", "render_html", "render_markdown",
           "report_paths", "write_report"]
