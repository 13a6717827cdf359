"""The failover report: the switch time, the records before and after, and when clients will have
moved (the switch time plus the records' old TTL), written beside the failover journal."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from drbootstrap.failover.switch_journal import PHASES, Switch
from drbootstrap.paths import EnvironmentPaths, write_private_file


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at)) if at is not None else "-"


def switch_report(environment: str, switch: Switch) -> dict:
    return {"environment": environment, **asdict(switch), "old_ttl": switch.old_ttl,
            "clients_moved_by": switch.clients_moved_by}


def switch_markdown(environment: str, switch: Switch) -> str:
    lines = [f"# {switch.command} of {environment}: {switch.from_site} -> {switch.to_site}", "",
             f"- started: {_when(switch.started_at)}",
             f"- verification at {switch.to_site}: {switch.verification or '-'}",
             f"- DNS switched: {_when(switch.switch_time)} ({switch.dns_updates} update(s) sent)",
             f"- clients will have moved by: {_when(switch.clients_moved_by)} "
             f"(switch time + old TTL {switch.old_ttl} s)"]
    if switch.fence is not None:
        lines.append(f"- old site {switch.from_site}: {switch.fence.state} ({switch.fence.policy}): "
                     f"{switch.fence.detail}")
    lines += ["", "| record | before | after |", "| --- | --- | --- |"]
    after = {(r.name, r.type): r for r in switch.records_after}
    for before in switch.records_before:
        now = after.get((before.name, before.type))
        lines.append(f"| {before.name} {before.type} | {', '.join(before.values) or '-'} (TTL {before.ttl}) | "
                     f"{', '.join(now.values) if now else '-'} (TTL {now.ttl if now else '-'}) |")
    lines += ["", "| phase | finished |", "| --- | --- |"]
    lines += [f"| {phase} | {_when(switch.phases[phase])} |" for phase in PHASES if phase in switch.phases]
    return "\n".join(lines) + "\n"


def write_switch_report(paths: EnvironmentPaths, environment: str, switch: Switch) -> tuple[Path, Path]:
    """failover-report.json and .md in the environment's directory; their paths."""
    write_private_file(paths.failover_report_json, json.dumps(switch_report(environment, switch), indent=1))
    write_private_file(paths.failover_report_markdown, switch_markdown(environment, switch))
    return paths.failover_report_json, paths.failover_report_markdown
