"""The recovery plan: which nodes to build, in what order (the master, then waves honouring `after:`,
which orders their Puppet steps), the steps each node takes, where workers wait, and when a node is
complete.

Pure: `build_plan(spec, done)` reads the spec (and what a journal says is done) and contacts nothing.
Cheap to import (no pydantic at import time): the CLI takes the step names from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from itertools import takewhile
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from drbootstrap.spec.models import EnvironmentSpec, NodeGroup

MASTER_ROLE = "master"
MASTER_WAVE = -1  # the master comes before wave 0


class Step(StrEnum):
    """Every step a node can take. The enum's order is the worker's, with the master's `services`
    after `boot` and its `puppet_ca` before the workers' Puppet steps, a broker node's `broker` after
    `discover`; each node's own order is its `PlannedNode.steps` (the master boots before it
    registers its name, a worker's name is registered before it boots)."""

    LAUNCH = "launch"
    REGISTER_NAME = "register_name"  # forward + reverse entry in the master's DNS
    BOOT = "boot"
    SERVICES = "services"  # master only: DNS and STOMP answer, the recipes are pushed
    TAKE_NAME = "take_name"  # the agent confirms the node renamed (or rebooted into) its name
    DISCOVER = "discover"
    BROKER = "broker"  # broker nodes only: their RabbitMQ runs, serves STOMP, is in the master's cluster
    VOLUMES = "volumes"
    PUPPET_CA = "puppet_ca"  # master only: its Puppet CA answers (server mode)
    PUPPET_SIGN = "puppet_sign"
    PUPPET_RUN = "puppet_run"
    PUPPET_ENABLE = "puppet_enable"
    RESTORE = "restore"
    CHECKS = "checks"


MASTER_STEPS = (Step.LAUNCH, Step.BOOT, Step.SERVICES, Step.REGISTER_NAME, Step.DISCOVER, Step.PUPPET_CA)
# Names are registered before the boot finishes, so the worker's boot script finds its PTR record
# and takes its name on the first boot (no reboot needed in the common case). Volumes before
# Puppet: Puppet then configures the service on top of the restored data.
WORKER_STEPS = (Step.LAUNCH, Step.REGISTER_NAME, Step.BOOT, Step.TAKE_NAME, Step.DISCOVER, Step.VOLUMES,
                Step.PUPPET_SIGN, Step.PUPPET_RUN, Step.PUPPET_ENABLE, Step.RESTORE, Step.CHECKS)

# A broker node (master.broker.replicas) is a worker whose RabbitMQ must also be ready: its agent
# (discovered first) reports it, so `up` ends only once every broker node carries messages.
BROKER_NODE_STEPS = (*WORKER_STEPS[:WORKER_STEPS.index(Step.DISCOVER) + 1], Step.BROKER,
                     *WORKER_STEPS[WORKER_STEPS.index(Step.DISCOVER) + 1:])

# Pipelining: recovery runs at the speed of its critical path. Workers start (launch, name, boot,
# discovery, volumes) as soon as the master has done WORKERS_START_AFTER (its DNS and broker answer,
# its agent is discovered), while its Puppet server is still starting. Only a worker's steps from
# READINESS_GATE on wait: for the master's PUPPET_CA and, through `after:`, for every node the
# worker depends on to be complete. The runner (executor/run.py) enforces both waits.
WORKERS_START_AFTER = Step.DISCOVER
READINESS_GATE = Step.PUPPET_SIGN
# The steps of a worker that wait for readiness: what the report's critical path chains along `after:`.
GATED_STEPS = WORKER_STEPS[WORKER_STEPS.index(READINESS_GATE):]


class StepsRecord(Protocol):
    """What completion needs from a node's journal record (journal.NodeRecord)."""

    def is_done(self, step: Step) -> bool: ...


@dataclass(frozen=True)
class PlannedNode:
    """One node to build. `group` is its NodeGroup (None for the master); `done` comes from the journal."""

    hostname: str
    fqdn: str
    role: str
    image: str
    size: str
    wave: int
    group: NodeGroup | None = field(default=None, compare=False, repr=False)
    done: bool = False
    steps: tuple[Step, ...] = WORKER_STEPS  # in the order `up` performs them

    @property
    def is_master(self) -> bool:
        return self.group is None

    def steps_through(self, until: Step | None) -> tuple[Step, ...]:
        """The steps `up --until STEP` takes on this node: its own steps up to STEP; for a node
        without STEP (the master at `--until volumes`), those that come before STEP in Step's order."""
        if until is None:
            return self.steps
        if until in self.steps:
            return self.steps[: self.steps.index(until) + 1]
        order = list(Step)
        return tuple(takewhile(lambda step: order.index(step) < order.index(until), self.steps))

    def to_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "fqdn": self.fqdn,
            "role": self.role,
            "image": self.image,
            "size": self.size,
            "wave": self.wave,
            "done": self.done,
            "steps": [str(step) for step in self.steps],
        }


def is_complete(record: StepsRecord | None, planned: PlannedNode) -> bool:
    """The one definition of a complete node: its journal record has every planned step done."""
    return record is not None and all(record.is_done(step) for step in planned.steps)


@dataclass(frozen=True)
class NodeProgress:
    """Against the journal: which of a node's planned steps are done, and which `up` still has to take."""

    hostname: str
    done: tuple[Step, ...]
    missing: tuple[Step, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "done_steps": [str(s) for s in self.done],
                "missing_steps": [str(s) for s in self.missing], "complete": not self.missing}


def progress(planned: PlannedNode, record: StepsRecord | None) -> NodeProgress:
    """The node's planned steps split into done and missing by its journal record (None: never started)."""
    done = tuple(step for step in planned.steps if record is not None and record.is_done(step))
    return NodeProgress(planned.hostname, done, tuple(step for step in planned.steps if step not in done))


@dataclass(frozen=True)
class Plan:
    """The master, then `waves[k]`: the nodes whose roles wait (via `after:`) on waves < k."""

    environment: str
    domain: str
    provider: str
    master: PlannedNode
    waves: list[list[PlannedNode]]

    def nodes(self) -> list[PlannedNode]:
        """Every node in build order, the master first."""
        return [self.master] + [node for wave in self.waves for node in wave]

    def pending(self) -> list[PlannedNode]:
        """The nodes still to build, in order (those the journal does not mark done)."""
        return [node for node in self.nodes() if not node.done]

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (what `drbootstrap plan --json` prints)."""
        return {
            "environment": self.environment,
            "domain": self.domain,
            "provider": self.provider,
            "master": self.master.to_dict(),
            "waves": [[node.to_dict() for node in wave] for wave in self.waves],
            "nodes": [node.to_dict() for node in self.nodes()],
            "node_count": len(self.nodes()),
        }


def dependencies(nodes: list[PlannedNode]) -> dict[str, set[str]]:
    """hostname -> the hostnames it waits for (every node of each role in its group's `after`)."""
    by_role: dict[str, set[str]] = {}
    for node in nodes:
        by_role.setdefault(node.role, set()).add(node.hostname)
    return {node.hostname: {h for role in (node.group.after if node.group else []) for h in by_role.get(role, ())}
            for node in nodes}


def role_waves(groups: list[NodeGroup]) -> dict[str, int]:
    """Role -> wave: 0 without `after`, else one more than the latest role it waits for.

    Assumes a validated spec (every `after` role exists, no cycles).
    """
    by_role = {group.role: group for group in groups}
    waves: dict[str, int] = {}

    def wave_of(role: str) -> int:
        if role not in waves:
            needed = by_role[role].after
            waves[role] = 1 + max(wave_of(other) for other in needed) if needed else 0
        return waves[role]

    for group in groups:
        wave_of(group.role)
    return waves


def build_plan(spec: EnvironmentSpec, done: set[str] | None = None) -> Plan:
    """The ordered plan for `spec`; hostnames in `done` (from a journal) are marked done.

    Within a wave, nodes keep the spec's order (group order, then hostname order).
    """
    from drbootstrap.spec.broker_nodes import BROKER_ROLE

    done = done or set()
    master_spec = spec.master
    master = PlannedNode(
        hostname=master_spec.hostname,
        fqdn=spec.fqdn(master_spec.hostname),
        role=MASTER_ROLE,
        image=master_spec.image,
        size=master_spec.size,
        wave=MASTER_WAVE,
        done=master_spec.hostname in done,
        steps=MASTER_STEPS,
    )
    wave_by_role = role_waves(spec.nodes)
    waves: list[list[PlannedNode]] = [[] for _ in range(max(wave_by_role.values(), default=-1) + 1)]
    for group in spec.nodes:
        wave = wave_by_role[group.role]
        for hostname in group.all_hostnames():
            waves[wave].append(
                PlannedNode(
                    hostname=hostname,
                    fqdn=spec.fqdn(hostname),
                    role=group.role,
                    image=group.image,
                    size=group.size,
                    wave=wave,
                    group=group,
                    done=hostname in done,
                    steps=(BROKER_NODE_STEPS if group.role == BROKER_ROLE and master_spec.broker.replicas > 1
                           else WORKER_STEPS),
                )
            )
    return Plan(spec.environment, spec.domain, spec.provider.name, master, waves)
