"""The failover journal: which site the environment is active at, and the switch in progress,
phase by phase (target_up, verified, dns_switched, fenced), written atomically after each phase so
an interrupted failover resumes where it stopped and never switches DNS twice or back by accident.

Only the failover runner (failover/run.py) writes it. It holds no secret: record names, values and TTLs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drbootstrap.errors import StateWriteError
from drbootstrap.failover.public_dns import RecordState
from drbootstrap.paths import PRIMARY_SITE, write_private_file

PHASES = ("target_up", "verified", "dns_switched", "fenced")


@dataclass
class FenceOutcome:
    """What became of the old site: `fenced` (policy applied), `unreachable` (could not be), `none` (policy)."""

    state: str
    policy: str
    detail: str = ""


@dataclass
class Switch:
    """One failover or failback: from where to where, and when each phase finished."""

    command: str  # failover | failback
    from_site: str
    to_site: str
    started_at: float
    phases: dict[str, float] = field(default_factory=dict)  # phase -> wall time it finished
    records_before: list[RecordState] = field(default_factory=list)
    records_after: list[RecordState] = field(default_factory=list)
    dns_updates: int = 0  # updates this switch sent (0 when the records already pointed at the target)
    switch_time: float | None = None
    fence: FenceOutcome | None = None
    verification: str = ""  # the last verification's outcome at the target
    finished_at: float | None = None

    def done(self, phase: str) -> bool:
        return phase in self.phases

    @property
    def old_ttl(self) -> int:
        """The longest TTL the switched records had before the switch (what resolvers may still cache)."""
        return max((r.ttl for r in self.records_before if r.ttl is not None), default=0)

    @property
    def clients_moved_by(self) -> float | None:
        """When every client will have moved: the switch time plus the records' old TTL."""
        return None if self.switch_time is None else self.switch_time + self.old_ttl


@dataclass
class FailoverState:
    active_site: str = PRIMARY_SITE
    current: Switch | None = None  # unfinished: the next failover of this environment resumes it
    history: list[Switch] = field(default_factory=list)


def load_state(path: Path) -> FailoverState:
    """The journal, or a fresh one (active at the primary site) when there is none yet."""
    if not path.exists():
        return FailoverState()
    data = json.loads(path.read_text())
    return FailoverState(active_site=data.get("active_site", PRIMARY_SITE),
                         current=_switch(data["current"]) if data.get("current") else None,
                         history=[_switch(s) for s in data.get("history", [])])


def save_state(path: Path, state: FailoverState) -> None:
    try:
        write_private_file(path, json.dumps(asdict(state), indent=1, sort_keys=True))
    except OSError as error:
        raise StateWriteError(f"cannot write the failover journal {path}: {error.strerror or error}",
                              hint="free space or make the state directory writable, then run it again") from None


def _records(items: list[dict[str, Any]]) -> list[RecordState]:
    return [RecordState(i["name"], i["type"], tuple(i["values"]), i["ttl"]) for i in items]


def _switch(data: dict[str, Any]) -> Switch:
    fence = data.get("fence")
    return Switch(command=data["command"], from_site=data["from_site"], to_site=data["to_site"],
                  started_at=data["started_at"], phases=dict(data.get("phases", {})),
                  records_before=_records(data.get("records_before", [])),
                  records_after=_records(data.get("records_after", [])),
                  dns_updates=data.get("dns_updates", 0), switch_time=data.get("switch_time"),
                  fence=FenceOutcome(**fence) if fence else None, verification=data.get("verification", ""),
                  finished_at=data.get("finished_at"))
