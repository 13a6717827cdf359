"""Telling someone how a drill went: the spec's command (the JSON on its standard input) and/or its
webhook (the JSON POSTed), within a timeout, on failure and on a missed target (on success when
asked). The message holds the drill's figures only: no secret, no key, no token."""

from __future__ import annotations

import json
from typing import Any

from drbootstrap.drill.history import SCHEMA_VERSION, DrillRecord
from drbootstrap.notify import deliver
from drbootstrap.spec.operations import NotifySpec


def should_notify(notify: NotifySpec | None, record: DrillRecord) -> bool:
    return notify is not None and (not record.passed or record.rto_met is False or notify.on_success)


def message(record: DrillRecord) -> dict[str, Any]:
    """The notification's body: what happened and where the report is."""
    event = "drill_passed" if record.passed else "drill_interrupted" if record.result == "interrupted" \
        else "rto_missed" if record.rto_met is False and record.checks_after_recovery else "drill_failed"
    return {"schema_version": SCHEMA_VERSION, "event": event, "environment": record.environment,
            "drill_environment": record.drill_environment, "drill_id": record.drill_id, "result": record.result,
            "reasons": record.reasons, "time_to_recovery_seconds": record.time_to_recovery_seconds,
            "rto_target_seconds": record.rto_target_seconds, "rto_met": record.rto_met,
            "rpo_seconds": record.rpo_seconds, "started_at": record.started_at, "finished_at": record.finished_at,
            "report_html": record.report_html}


def send(notify: NotifySpec, record: DrillRecord) -> list[str]:
    """Notify through every channel the spec names; one line per channel saying how it went (a
    failed notification is reported, it does not change the drill's result)."""
    return deliver(notify, json.dumps(message(record)).encode())
