"""How the environment stands: the one place that turns `status` (the cloud's view, the journal's
and the agents' answers) into a verdict. `check` renders it as a Nagios plugin line, `watch` acts
on its dead nodes, `status` lists the same problems.

A dead active node whose name a standby answers for (the watcher's memory) is named with it:
`web01 answered by web-standby1`.

Nagios conventions: 0 OK (every node running, every agent answering), 1 WARNING (a node failed a
step but is alive), 2 CRITICAL (a node dead: absent or not running in the cloud, or its agent
silent), 3 UNKNOWN (the broker cannot be asked, so nothing is known of the agents).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from drbootstrap.executor.lifecycle import EnvironmentStatus, NodeStatus
from drbootstrap.journal import StepState
from drbootstrap.watch.state import WatchState


class Verdict(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


def node_dead(node: NodeStatus) -> bool:
    """Absent or not running in the cloud, or its agent silent (NodeStatus.dead, as `status` says)."""
    return node.dead


def confirmed_dead(node: NodeStatus) -> bool:
    """The provider itself says the node is gone or not running (not merely a silent agent)."""
    return node.cloud_state != "running"


@dataclass
class Health:
    environment: str
    verdict: Verdict
    summary: str
    dead: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    answering: int = 0
    total: int = 0
    resurrected: int = 0
    last_recovery_seconds: float | None = None
    serving: dict[str, str] = field(default_factory=dict)  # dead active hostname -> the standby answering for it
    switches: int = 0

    def perfdata(self) -> str:
        last = f"{self.last_recovery_seconds:.1f}s" if self.last_recovery_seconds is not None else "U"
        return (f"agents={self.answering};;;0;{self.total} resurrected={self.resurrected} last_recovery={last} "
                f"standby_switches={self.switches}")

    def nagios_line(self) -> str:
        """One line: `DRBOOTSTRAP <STATE> - <summary> | <performance data>` (no `|` in the summary)."""
        return f"DRBOOTSTRAP {self.verdict.name} - {self.summary.replace('|', '/')} | {self.perfdata()}"


def assess(status: EnvironmentStatus, watch: WatchState | None = None) -> Health:
    """The verdict for this status (with the watcher's memory for the performance data)."""
    watch = watch or WatchState()
    total = len(status.nodes)
    answering = sum(1 for n in status.nodes if n.agent == "answers")
    last = watch.last_finished()
    health = Health(status.environment, Verdict.OK, "", problems=list(status.problems), answering=answering,
                    total=total, resurrected=watch.resurrected_count(),
                    last_recovery_seconds=last.seconds if last is not None and last.ok else None,
                    serving=dict(watch.serving), switches=len(watch.switches))
    master = next((n for n in status.nodes if n.role == "master"), None)
    master_running = master is not None and master.cloud_state == "running"
    health.dead = [n.hostname for n in status.nodes if node_dead(n)]
    failed = [n.hostname for n in status.nodes if n.last_step.endswith(f" {StepState.FAILED}") and not node_dead(n)]
    if master_running and status.broker_reachable is False:
        health.verdict = Verdict.UNKNOWN
        health.summary = f"{status.environment}: the broker cannot be asked ({status.broker})"
    elif health.dead:
        health.verdict = Verdict.CRITICAL
        health.summary = f"{status.environment}: {len(health.dead)} of {total} nodes dead: " + "; ".join(
            p for p in status.problems if p.split(":", 1)[0] in health.dead) + "".join(
            f"; {name} answered by {standby}" for name, standby in sorted(watch.serving.items()))
    elif failed:
        health.verdict = Verdict.WARNING
        health.summary = f"{status.environment}: a step failed on {', '.join(failed)}"
    else:
        health.summary = f"{status.environment}: {answering} of {total} agents answer"
    return health
