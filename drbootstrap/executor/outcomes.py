"""What a step of one node's recovery leaves (StepResult), how it fails (StepFailed), and the signals
that send the node back to launch (StartOver: NodeLost, Relaunch). Shared by the steps
(steps.py, launch_steps.py) and the runner (run.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from drbootstrap.errors import DrbError
from drbootstrap.executor.context import NodeRuntime, RunContext
from drbootstrap.journal import Fact

# A launch step's fact: True when the node carries a one-time autosign token (puppet_sign then has
# nothing to do), False when it must be signed explicitly at puppet_sign.
AUTOSIGN_ARMED = "autosign_armed"
MASTER_STATE_OFFERED = "master_state_offered"  # launch: the master-state backup its user-data names


@dataclass(frozen=True)
class StepResult:
    """What a step leaves: `detail` for people (journal, events, report), `facts` for later steps."""

    detail: str
    facts: dict[str, Fact] = field(default_factory=dict)


StepFunction = Callable[[RunContext, NodeRuntime], StepResult]


class StepFailed(DrbError):
    """One step of one node failed; `log_tail` holds the lines that say why (console, agent, Puppet)."""

    def __init__(self, message: str, *, hint: str | None = None, log_tail: str = "") -> None:
        super().__init__(message, hint=hint)
        self.log_tail = log_tail


class StartOver(Exception):  # a signal to the runner, not an error
    """The node must be launched anew: the runner forgets it (new generation, new client token) and
    runs its steps again from launch. `reason` is one line for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NodeLost(StartOver):
    """The cloud no longer has the node the journal says was launched (destroyed by hand, reclaimed)."""


class Relaunch(StartOver):
    """The node this launch made cannot be used (its launch was cut short) and has been destroyed."""
