"""A drill's lease: written in the drill's state directory before anything is launched, it names the
drill, the process running it (pid, host, boot) and when it expires. A drill whose process is gone
(SIGKILL, power loss) or whose lease expired is reapable by anyone (reap.py)."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drbootstrap.drill.identity import DrillIdentity
from drbootstrap.paths import EnvironmentPaths, write_private_file

RUNNING, KEPT = "running", "kept"  # kept: the teardown policy left it up for people to look at


@dataclass
class DrillLease:
    drill_id: str
    environment: str
    production_environment: str
    started_at: float
    expires_at: float
    provider_changes: dict[str, str] = field(default_factory=dict)  # how the drill's provider block differs
    state: str = RUNNING
    pid: int = 0
    host: str = ""
    boot_id: str = ""
    process_start: str = ""  # the owner's start time in clock ticks: a reused pid is another process

    @classmethod
    def for_this_process(cls, identity: DrillIdentity, provider_changes: dict[str, str]) -> DrillLease:
        pid = os.getpid()
        return cls(identity.drill_id, identity.environment, identity.production_environment, identity.started_at,
                   identity.expires_at, dict(provider_changes), RUNNING, pid, socket.gethostname(), _boot_id(),
                   _process_start(pid))

    def owner_alive(self) -> bool:
        """Is the process that runs this drill still running (here, since this boot, the same process)?"""
        if self.host != socket.gethostname() or self.boot_id != _boot_id():
            return False  # another machine's, or from before a reboot: its process is gone
        return bool(self.pid) and _process_start(self.pid) == self.process_start

    def reapable(self, now: float) -> str | None:
        """Why this drill may be reaped now (expired, its process gone), or None while it is in use."""
        if now >= self.expires_at:
            return f"expired {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(self.expires_at))} UTC"
        if self.state == RUNNING and not self.owner_alive():
            return f"its process {self.pid} on {self.host} is gone"
        return None

    def save(self, state_dir: Path) -> None:
        write_private_file(EnvironmentPaths(state_dir, self.environment).drill_lease,
                           json.dumps(asdict(self), indent=1) + "\n")


def read_lease(path: Path) -> DrillLease | None:
    """The lease at PATH; None when it is missing or unreadable (a crash mid-write leaves the old one)."""
    try:
        return DrillLease(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def all_leases(state_dir: Path) -> list[DrillLease]:
    """Every drill lease in the state directory, oldest first."""
    root = state_dir / "environments"
    found = [read_lease(EnvironmentPaths(state_dir, p.name).drill_lease) for p in sorted(root.iterdir())] \
        if root.is_dir() else []
    return sorted((lease for lease in found if lease is not None), key=lambda lease: lease.started_at)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, starttime, after the command in parentheses
