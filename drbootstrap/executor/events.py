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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
