"""The critical path of a recovery: the longest chain of waits no scheduler could avoid, from the journal.

With each step taking the time the journal says it took, a node's Puppet steps (plan.GATED_STEPS)
can start no earlier than the master's Puppet CA answered, its own steps before them were done
(started once the master's agent answered), and every node it depends on (`after:`) was complete.
The longest such chain is the floor for the run's wall time; wall time / critical path says how
close the run came to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drbootstrap.journal import Journal, NodeRecord, StepState
from drbootstrap.plan import GATED_STEPS, WORKERS_START_AFTER, Plan, PlannedNode, Step, dependencies


@dataclass(frozen=True)
class Link:
    """One segment of the chain: NODE's STEPS (done, in order), taking SECONDS in all."""

    node: str
    steps: tuple[str, ...]
    seconds: float

    def describe(self) -> str:
        steps = self.steps[0] if len(self.steps) == 1 else f"{self.steps[0]} .. {self.steps[-1]}"
        return f"{self.node} {steps}"

    def to_dict(self) -> dict[str, object]:
        return {"node": self.node, "steps": list(self.steps), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class CriticalPath:
    """The chain, in order, and its length in seconds."""

    seconds: float
    chain: tuple[Link, ...] = field(default=())

    def steps(self) -> set[tuple[str, str]]:
        """(hostname, step) of every step on the chain, for drawing it."""
        return {(link.node, step) for link in self.chain for step in link.steps}

    def to_dict(self) -> dict[str, object]:
        return {"seconds": round(self.seconds, 3), "chain": [link.to_dict() for link in self.chain]}


def _segment(node: PlannedNode, record: NodeRecord | None, steps: tuple[Step, ...]) -> Link | None:
    """NODE's done STEPS as one link (None when it did none of them)."""
    done = [(step, record.steps[step].seconds or 0.0) for step in steps
            if record is not None and step in record.steps and record.steps[step].state is StepState.DONE]
    if not done:
        return None
    return Link(node.hostname, tuple(str(step) for step, _ in done), sum(seconds for _, seconds in done))


def _chain_seconds(chain: tuple[Link, ...]) -> float:
    return sum(link.seconds for link in chain)


def critical_path(journal: Journal, plan: Plan) -> CriticalPath:
    """The longest chain of waits in the run the journal records (done steps only)."""
    records = journal.data.nodes
    master = plan.master
    split = master.steps.index(WORKERS_START_AFTER) + 1
    to_workers = tuple(x for x in [_segment(master, records.get(master.hostname), master.steps[:split])] if x)
    to_ca = to_workers + tuple(x for x in [_segment(master, records.get(master.hostname), master.steps[split:])] if x)
    workers = [node for wave in plan.waves for node in wave]
    needs = dependencies(workers)
    ends: dict[str, tuple[Link, ...]] = {}
    for node in workers:  # plan order: a node's dependencies come before it
        record = records.get(node.hostname)
        before_gate = tuple(step for step in node.steps if step not in GATED_STEPS)
        candidates = [to_ca, to_workers + tuple(x for x in [_segment(node, record, before_gate)] if x)]
        candidates += [ends[d] for d in sorted(needs[node.hostname]) if d in ends]
        start = max(candidates, key=_chain_seconds)
        gated = _segment(node, record, GATED_STEPS)
        ends[node.hostname] = start + ((gated,) if gated else ())
    longest = max([to_ca, *ends.values()], key=_chain_seconds)
    return CriticalPath(_chain_seconds(longest), _merged(longest))


def _merged(chain: tuple[Link, ...]) -> tuple[Link, ...]:
    """Consecutive links of one node as one (a worker's steps before its Puppet gate and after it)."""
    merged: list[Link] = []
    for link in chain:
        if merged and merged[-1].node == link.node:
            last = merged.pop()
            link = Link(link.node, last.steps + link.steps, last.seconds + link.seconds)
        merged.append(link)
    return tuple(merged)
