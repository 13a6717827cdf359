"""Telling someone how a drill went: the spec's command (the JSON on its standard input) and/or its
webhook (the JSON POSTed), within a timeout, on failure and on a missed target (on success when
asked). The message holds the drill's figures only: no secret, no key, no token."""

from __future__ import annotations

import json
import shlex
import subprocess
import urllib.error
import urllib.request
from typing import Any

from drbootstrap.drill.history import SCHEMA_VERSION, DrillRecord
from drbootstrap.spec.models import DrillNotifySpec


def should_notify(notify: DrillNotifySpec | None, record: DrillRecord) -> bool:
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


def send(notify: DrillNotifySpec, record: DrillRecord) -> list[str]:
    """Notify through every channel the spec names; one line per channel saying how it went (a
    failed notification is reported, it does not change the drill's result)."""
    body = json.dumps(message(record)).encode()
    lines = []
    if notify.command is not None:
        lines.append(_run_command(notify.command, body, notify.timeout_seconds))
    if notify.webhook is not None:
        lines.append(_post(notify.webhook, body, notify.timeout_seconds))
    return lines


def _run_command(command: str, body: bytes, timeout: float) -> str:
    name = shlex.split(command)[0] if command.strip() else command
    try:
        done = subprocess.run(["/bin/sh", "-c", command], input=body, capture_output=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return f"command {name}: no answer within {timeout:.0f} s"
    except OSError as error:
        return f"command {name}: {error.strerror or error}"
    return f"command {name}: exit {done.returncode}"


def _post(url: str, body: bytes, timeout: float) -> str:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "drbootstrap-drill"})
    where = url.split("?", 1)[0]
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return f"webhook {where}: HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"webhook {where}: HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"webhook {where}: {getattr(error, 'reason', error)}"
