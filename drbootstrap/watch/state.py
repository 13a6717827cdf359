"""The watcher's memory, in the environment's state directory (EnvironmentPaths.watch_state):
how many intervals each node has been silent, every resurrection (started, finished, the dead
node's provider id), when nodes went unhealthy (for the meltdown guard), a pause, and which
standby answers for a dead active node's name (and every standby switch). Written
atomically after every change, so a watcher killed and started again forgets nothing and never
resurrects the same dead node (provider id) twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drbootstrap.errors import StateWriteError

KEEP_RESURRECTIONS = 1000  # the newest kept: a dead node's provider id is never seen again long after


@dataclass
class Resurrection:
    hostname: str
    dead_id: str  # the provider id of the node that died ("" when the cloud had lost it)
    started_at: float
    finished_at: float = 0.0
    ok: bool | None = None  # None: under way (or the watcher died during it)
    reason: str = ""

    @property
    def seconds(self) -> float | None:
        return self.finished_at - self.started_at if self.finished_at else None


@dataclass
class Switch:
    """A dead active node's name (or elastic address) moved to a standby of its group."""

    hostname: str  # the dead active node, whose name moved
    standby: str  # the standby answering for it
    dead_id: str
    at: float  # when the name had moved
    seconds: float  # the move itself (detection not included)
    how: str  # "dns: web01.demo.internal -> 10.213.0.7" or "elastic address 203.0.113.5"


@dataclass
class Pause:
    reason: str
    since: float
    nodes: list[str] = field(default_factory=list)


@dataclass
class WatchState:
    silent: dict[str, int] = field(default_factory=dict)  # hostname -> consecutive silent intervals
    unhealthy_since: dict[str, float] = field(default_factory=dict)  # hostname -> when it went unhealthy
    resurrections: list[Resurrection] = field(default_factory=list)
    pause: Pause | None = None
    resumed_at: float = 0.0  # `watch --resume`: nodes unhealthy before it no longer count for the guard
    serving: dict[str, str] = field(default_factory=dict)  # dead active hostname -> the standby answering for it
    switches: list[Switch] = field(default_factory=list)

    def active(self, hostname: str) -> str:
        """The node answering for `hostname` now: a standby while it is dead and not yet rebuilt, else itself."""
        return self.serving.get(hostname, hostname)

    def resurrected_count(self, hostname: str | None = None) -> int:
        return sum(1 for r in self.resurrections if r.ok and (hostname is None or r.hostname == hostname))

    def last_finished(self) -> Resurrection | None:
        done = [r for r in self.resurrections if r.finished_at]
        return max(done, key=lambda r: r.finished_at) if done else None

    def tried(self, hostname: str, dead_id: str) -> Resurrection | None:
        """The resurrection already begun for this dead node, if any (never begin a second one)."""
        for entry in reversed(self.resurrections):
            if entry.hostname == hostname and entry.dead_id == dead_id:
                return entry
        return None


def load(path: Path) -> WatchState:
    """The saved state; an empty one when there is none. A damaged file is refused with its path."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return WatchState()
    except (OSError, ValueError, TypeError) as error:
        raise StateWriteError(f"{path}: the watcher's state cannot be read ({error})",
                              hint="move the file aside; the watcher starts with no memory") from None
    pause = raw.get("pause")
    return WatchState(silent={str(k): int(v) for k, v in raw.get("silent", {}).items()},
                      unhealthy_since={str(k): float(v) for k, v in raw.get("unhealthy_since", {}).items()},
                      resurrections=[Resurrection(**r) for r in raw.get("resurrections", [])],
                      pause=Pause(**pause) if pause else None, resumed_at=float(raw.get("resumed_at", 0.0)),
                      serving={str(k): str(v) for k, v in raw.get("serving", {}).items()},
                      switches=[Switch(**w) for w in raw.get("switches", [])])


def save(path: Path, state: WatchState) -> None:
    """Replace the file atomically (write, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state.resurrections = state.resurrections[-KEEP_RESURRECTIONS:]
    state.switches = state.switches[-KEEP_RESURRECTIONS:]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as handle:
            json.dump(asdict(state), handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise StateWriteError(f"{path}: the watcher's state cannot be written ({error.strerror or error})",
                              hint="free space in the state directory; the watcher keeps trying") from None
