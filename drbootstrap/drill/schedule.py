"""`drbootstrap schedule`: a systemd timer and the oneshot service it starts, running the drill of a
spec on a calendar (systemd's OnCalendar syntax: `weekly`, `Sun *-*-* 03:00:00`, ...)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from drbootstrap.errors import DrbError

_CALENDAR = re.compile(r"^[A-Za-z0-9 ,:.*~/+-]{1,100}$")


@dataclass(frozen=True)
class Units:
    name: str  # without suffix: drbootstrap-drill-<environment>
    service: str
    timer: str


def drill_units(environment: str, spec_file: Path, every: str, drbootstrap: Path,
                state_dir: Path | None = None) -> Units:
    """The service (runs `drbootstrap drill SPEC`) and the timer (OnCalendar=EVERY) for ENVIRONMENT."""
    if not _CALENDAR.match(every):
        raise DrbError(f"--every {every!r} is not a systemd calendar expression",
                       hint="write e.g. weekly, daily, 'Sun *-*-* 03:00:00' (see `systemd-analyze calendar`)")
    name = f"drbootstrap-drill-{environment}"
    command = [str(drbootstrap), "drill", str(spec_file.resolve()), "--plain"]
    environment_line = f"Environment=DRB_STATE_DIR={shlex.quote(str(state_dir))}\n" if state_dir else ""
    service = (
        "[Unit]\n"
        f"Description=drbootstrap fire drill of {environment}\n"
        "Documentation=man:systemd.timer(5)\n"
        "After=network.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"{environment_line}"
        f"ExecStart={shlex.join(command)}\n"
        # A drill tears itself down on SIGTERM; give it the time to.
        "KillMode=mixed\n"
        "TimeoutStopSec=300\n"
    )
    timer = (
        "[Unit]\n"
        f"Description=Run the drbootstrap fire drill of {environment} ({every})\n\n"
        "[Timer]\n"
        f"OnCalendar={every}\n"
        "Persistent=true\n"
        "RandomizedDelaySec=600\n"
        f"Unit={name}.service\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return Units(name, service, timer)


def write_units(units: Units, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, text in (("service", units.service), ("timer", units.timer)):
        path = directory / f"{units.name}.{suffix}"
        path.write_text(text)
        written.append(path)
    return written
