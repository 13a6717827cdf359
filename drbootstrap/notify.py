"""Telling someone what happened: the spec's command (the JSON on its standard input) and/or its
webhook (the JSON POSTed), each within the spec's timeout. The message carries what happened and
to which nodes only: no secret, no key, no token. A failed notification is reported as a line; it
never changes what the caller did.

Used by `drbootstrap watch` (resurrections, pauses) and by drills (drill/notify.py builds their
message and delivers it here).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from drbootstrap.spec.operations import NotifySpec

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Notification:
    """One event: its kind (`resurrected`, `resurrection_failed`, `paused`, `resumed`...), the
    environment, the nodes it concerns and one line for a person."""

    event: str
    environment: str
    summary: str
    nodes: list[str] = field(default_factory=list)
    at: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        return json.dumps({"schema_version": SCHEMA_VERSION, **asdict(self)}).encode()


def send(notify: NotifySpec | None, notification: Notification) -> list[str]:
    """Notify through every channel the spec names; one line per channel saying how it went."""
    if notify is None:
        return []
    return deliver(notify, notification.body())


def deliver(notify: NotifySpec, body: bytes) -> list[str]:
    """Send BODY (JSON) through the command and/or the webhook; one line per channel."""
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
                                     headers={"Content-Type": "application/json", "User-Agent": "drbootstrap"})
    where = url.split("?", 1)[0]
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return f"webhook {where}: HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"webhook {where}: HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"webhook {where}: {getattr(error, 'reason', error)}"
