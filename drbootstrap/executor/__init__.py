"""The run behind `drbootstrap up`: per-node step pipelines in dependency order, journalled, resumable.

    result, report = up(spec, state_dir, options=UpOptions(), emit=print)
"""

from drbootstrap.executor.context import NodeRuntime, RunContext, UpOptions
from drbootstrap.executor.events import Event
from drbootstrap.executor.lifecycle import (
           DownResult,
           EnvironmentStatus,
           down,
           resolve_only,
           status,
           up,
)
from drbootstrap.executor.run import NodeOutcome, RunResult, run_up

__all__ = ["DownResult", "EnvironmentStatus", "Event", "NodeOutcome", "NodeRuntime", "RunContext", "RunResult",
           "UpOptions", "down", "resolve_only", "run_up", "status", "up"]
