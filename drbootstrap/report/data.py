"""The recovery report as data (what report.json holds): every node's steps from the journal, so a
resumed run reports every step it took across runs; time per step and overall; the critical path
and the RTO target; the failed nodes with reason and log tail; the backups restored (RPO achieved).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any, Protocol

from drbootstrap.journal import Journal, StepState
from drbootstrap.plan import Plan, Step, is_complete
from drbootstrap.report.critical_path import critical_path


class Outcome(Protocol):
    """How the run left one node (executor.run.NodeOutcome)."""

    role: str
    state: str
    step: str
    reason: str
    log_tail: str

    @property
    def ok(self) -> bool: ...


def build_report(journal: Journal, outcomes: Mapping[str, Outcome], *, run_started: float, run_finished: float,
                 plan: Plan, rto_seconds: float | None = None) -> dict[str, Any]:
    """The report as data, every node of the plan in build order. A node is complete by the plan's
    one definition (plan.is_complete); the environment is recovered when every node is. RTO_SECONDS
    is the spec's target (drill.rto_minutes): the report says whether recovery met it."""
    nodes_data = journal.data.nodes
    planned_nodes = plan.nodes()
    nodes = []
    starts, ends = [], []
    per_step: dict[str, list[float]] = {}
    path = critical_path(journal, plan)
    on_path = path.steps()
    for planned in planned_nodes:
        hostname = planned.hostname
        record = nodes_data.get(hostname)
        outcome = outcomes.get(hostname)
        steps = []
        for step, rec in sorted((record.steps.items() if record else []), key=lambda item: item[1].started_at):
            steps.append({"step": str(step), "state": str(rec.state), "started_at": rec.started_at,
                          "finished_at": rec.finished_at, "seconds": _round(rec.seconds), "detail": rec.detail,
                          "critical": (hostname, str(step)) in on_path})
            starts.append(rec.started_at)
            if rec.finished_at is not None:
                ends.append(rec.finished_at)
            if rec.state is StepState.DONE and rec.seconds is not None:
                per_step.setdefault(str(step), []).append(rec.seconds)
        nodes.append({
            "hostname": hostname, "role": record.role if record else getattr(outcome, "role", ""),
            "address": record.address if record else None, "provider_id": record.provider_id if record else None,
            "outcome": getattr(outcome, "state", "unknown"), "failed_step": getattr(outcome, "step", ""),
            "reason": getattr(outcome, "reason", ""), "complete": is_complete(record, planned), "steps": steps,
        })
    backups = restored_backups(journal, plan)
    failed = [{"hostname": h, "role": o.role, "state": o.state, "step": o.step, "reason": o.reason,
               "log_tail": o.log_tail} for h, o in outcomes.items() if not o.ok]
    recovered = all(node["complete"] for node in nodes)
    step_order = [str(s) for s in Step]
    span = _round(max(ends) - min(starts)) if starts and ends else None
    ttr = span if recovered else None
    return {
        "environment": journal.data.environment,
        "generated_at": time.time(),
        "run": {"started_at": run_started, "finished_at": run_finished,
                "seconds": _round(run_finished - run_started)},
        "time_to_recovery_seconds": ttr,
        "recovery_span_seconds": span,
        # The floor no scheduler could beat with these step times; wall / critical path says how close.
        "critical_path": path.to_dict(),
        "critical_path_seconds": _round(path.seconds),
        "wall_over_critical_path": round(span / path.seconds, 2) if span and path.seconds > 0 else None,
        "rto": {"target_seconds": rto_seconds,
                "met": (ttr <= rto_seconds) if ttr is not None and rto_seconds else None},
        "ok": not failed,  # the run did what was asked (with --until it may stop short of recovered)
        "recovered": recovered,  # every node complete
        "steps": {name: {"nodes": len(per_step[name]), "min": _round(min(per_step[name])),
                         "median": _round(statistics.median(per_step[name])), "max": _round(max(per_step[name])),
                         "total": _round(sum(per_step[name]))}
                  for name in step_order if name in per_step},
        "failed": failed,
        # per volume restored from a backup: which, its age when restored (the RPO achieved), verified
        "backups": backups,
        "nodes": nodes,
    }


def restored_backups(journal: Journal, plan: Plan) -> list[dict[str, Any]]:
    """What each node's volumes step (snapshots), restore step (dumps from the bucket) and, on the
    master, boot step (its own state, master.restore) restored,
    from their facts (backups.restored), in plan order."""
    from drbootstrap.backups.restored import restore_facts

    found = []
    for planned in plan.nodes():
        record = journal.data.nodes.get(planned.hostname)
        for step_name, kind in ((Step.BOOT, "master"), (Step.VOLUMES, "snapshot"), (Step.RESTORE, "dump")):
            step = record.steps.get(step_name) if record else None
            for restored in restore_facts(step.facts if step else {}):
                found.append({"hostname": planned.hostname, "kind": kind, "volume": restored.volume,
                              "backup_id": restored.backup_id or None,
                              "backup_created_at": restored.created_at or None,
                              "rpo_seconds": restored.rpo_seconds, "verified": restored.verified or None,
                              "failed_verification": [i for i in restored.failed.split(",") if i]})
    return found


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
