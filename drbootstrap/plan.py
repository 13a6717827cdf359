"""The recovery plan: which nodes to build, in what order (the master, then waves honouring `after:`).

Pure: `build_plan(spec, done)` reads the spec (and what a journal says is done) and contacts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drbootstrap.spec.models import EnvironmentSpec, NodeGroup

MASTER_ROLE = "master"
MASTER_WAVE = -1  # the master comes before wave 0


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

    @property
    def is_master(self) -> bool:
        return self.group is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "fqdn": self.fqdn,
            "role": self.role,
            "image": self.image,
            "size": self.size,
            "wave": self.wave,
            "done": self.done,
        }


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
    )
    wave_by_role = role_waves(spec.nodes)
    waves: list[list[PlannedNode]] = [[] for _ in range(max(wave_by_role.values(), default=-1) + 1)]
    for group in spec.nodes:
        wave = wave_by_role[group.role]
        for hostname in group.expand_hostnames():
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
                )
            )
    return Plan(spec.environment, spec.domain, spec.provider.name, master, waves)
