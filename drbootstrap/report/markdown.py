"""The recovery report for people, in Markdown: summary, critical path and RTO, a Mermaid gantt of
every node's steps, time per step, failed nodes with their log tail, every node's timeline."""

from __future__ import annotations

import time
from typing import Any


def headline(report: dict[str, Any]) -> list[str]:
    """The summary lines (Markdown list items without the bullet), shared with the HTML report."""
    ttr = report["time_to_recovery_seconds"]
    if not report["ok"]:
        outcome = f"PARTIAL: {len(report['failed'])} node(s) not recovered"
    else:
        outcome = "recovered" if report["recovered"] else "not recovered yet: stopped early (--until)"
    lines = [f"Outcome: {outcome}",
             f"Time to recovery: {fmt(ttr) if ttr is not None else 'not recovered yet'}"
             f" (first step to last, across runs: {fmt(report['recovery_span_seconds'])})"]
    path = report["critical_path"]
    ratio = report["wall_over_critical_path"]
    chain = " -> ".join(f"{link['node']} {_steps(link['steps'])} ({fmt(link['seconds'])})" for link in path["chain"])
    lines.append(f"Critical path: {fmt(path['seconds'])}"
                 + (f"; wall time / critical path = {ratio:.2f}" if ratio is not None else "")
                 + (f" ({chain})" if chain else ""))
    rto = report["rto"]
    if rto["target_seconds"]:
        verdict = {True: "met", False: "MISSED", None: "not decided (not recovered)"}[rto["met"]]
        lines.append(f"RTO target {fmt(rto['target_seconds'])} (drill.rto_minutes): {verdict}")
    restored = [b for b in report.get("backups") or [] if b["backup_id"]]
    if restored:
        worst = max(b["rpo_seconds"] or 0 for b in restored)
        verified = sum(1 for b in restored if b["verified"] == "ok")
        fell_back = sum(1 for b in restored if b["failed_verification"])
        lines.append(f"Backups: {len(restored)} volume(s) restored, RPO achieved {fmt(worst)} at worst, "
                     f"{verified} of {len(restored)} verified"
                     + (f", {fell_back} from an older backup after a failed verification" if fell_back else ""))
    lines.append(f"This run: {fmt(report['run']['seconds'])}, started {when(report['run']['started_at'])}")
    # A drill's report leads with the drill's own verdict (drbootstrap.drill.history adds it).
    return [f"Drill: {line}" for line in report.get("drill", {}).get("lines", [])] + lines


def _steps(steps: list[str]) -> str:
    return steps[0] if len(steps) == 1 else f"{steps[0]}..{steps[-1]}"


def render_markdown(report: dict[str, Any]) -> str:
    """The human report: summary, timeline chart, time per step, failed nodes with their log tail,
    every node's steps."""
    lines = [f"# Recovery report: {report['environment']}", ""]
    lines += [f"- {line}" for line in headline(report)]
    lines += ["", "## Timeline chart", "", *mermaid_gantt(report)]
    lines += ["", "## Time per step", "",
              "| step | nodes | min | median | max | time spent (all nodes) |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, figures in report["steps"].items():
        lines.append(f"| {name} | {figures['nodes']} | {fmt(figures['min'])} | {fmt(figures['median'])} | "
                     f"{fmt(figures['max'])} | {fmt(figures['total'])} |")
    lines += backups_section(report)
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
    origin = timeline_origin(report)
    for node in report["nodes"]:
        lines += [f"### {node['hostname']} ({node['role']}, {node['address'] or 'no address'}): {node['outcome']}", "",
                  "| step | state | start (+s) | seconds | detail |", "| --- | --- | ---: | ---: | --- |"]
        for step in node["steps"]:
            detail = step["detail"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {step['step']} | {step['state']} | {step['started_at'] - origin:.1f} | "
                         f"{fmt(step['seconds'])} | {detail} |")
        lines.append("")
    return "\n".join(lines)


def backups_section(report: dict[str, Any]) -> list[str]:
    """Per volume restored: the backup, its age when restored (the RPO achieved), whether it verified."""
    restored = report.get("backups") or []
    if not restored:
        return []
    lines = ["", "## Backups restored", "", "| node | volume | backup | taken | RPO achieved | verified | "
             "failed verification |", "| --- | --- | --- | --- | ---: | --- | --- |"]
    for entry in restored:
        if entry["backup_id"] is None:
            lines.append(f"| {entry['hostname']} | {entry['volume']} | none yet: started empty | | | | |")
            continue
        what = f"dump {entry['volume']}" if entry.get("kind") == "dump" else entry["volume"]
        lines.append(f"| {entry['hostname']} | {what} | {entry['backup_id']} | "
                     f"{when(entry['backup_created_at'])} | {fmt(entry['rpo_seconds'])} | {entry['verified']} | "
                     f"{', '.join(entry['failed_verification']) or '-'} |")
    return lines


def mermaid_gantt(report: dict[str, Any]) -> list[str]:
    """A Mermaid gantt block: a section per node, a bar per step (milliseconds from the first step);
    steps on the critical path marked `crit`, failed ones `active`."""
    origin = timeline_origin(report)
    lines = ["```mermaid", "gantt", "    title Every node's steps (critical path in red)", "    dateFormat x",
             "    axisFormat %M:%S"]
    for node in report["nodes"]:
        if not node["steps"]:
            continue
        lines.append(f"    section {node['hostname']}")
        for step in node["steps"]:
            start = int((step["started_at"] - origin) * 1000)
            end = int(((step["finished_at"] or step["started_at"]) - origin) * 1000)
            tag = "crit, " if step["critical"] else ("active, " if step["state"] == "failed" else "")
            lines.append(f"    {step['step']} :{tag}{start}, {max(end, start + 1)}")
    lines.append("```")
    return lines


def timeline_origin(report: dict[str, Any]) -> float:
    """When the first step started (the charts' zero)."""
    return min((s["started_at"] for n in report["nodes"] for s in n["steps"]), default=0.0)


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
    return f"{seconds:.1f} s"


def when(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix))
