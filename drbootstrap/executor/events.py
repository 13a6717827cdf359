"""Progress events: the executor emits them, the CLI renders them (table, lines or JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Node-level states an Event can carry besides the journal's step states.
RUNNING = "running"
DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"  # the journal says the step is done already
BLOCKED = "blocked"  # a node it depends on failed
WAITING = "waiting"  # for the nodes it depends on
RETRY = "retry"  # a cloud call is being retried (throttling)
HEARTBEAT = "heartbeat"  # still in a long step: the detail says what it waits for, and how long so far


@dataclass(frozen=True)
class Event:
    """One thing that happened to one node: a step started, finished, failed or was skipped."""

    node: str
    step: str
    state: str
    elapsed: float = 0.0  # seconds since the run started
    detail: str = ""
    role: str = ""
    address: str = ""
    at: float = 0.0  # wall clock (unix time)
    steps_done: int = 0  # the run's steps done so far (or found done in the journal) ...
    steps_total: int = 0  # ... of every step this run takes (0: not counted)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
