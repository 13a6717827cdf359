"""Volumes on clouds whose volumes carry no tags (the local cloud, generic libcloud): a volume is
the environment's by its name, made once per node and volume (found again by name), then attached."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from libcloud.compute.base import Node, VolumeSnapshot

from drbootstrap.errors import NotFoundError

if TYPE_CHECKING:
    from drbootstrap.providers.base import Provider, VolumeWanted


class _ListsSnapshots(Protocol):
    """A driver with the list_snapshots most libcloud drivers add (NodeDriver itself has none)."""

    def list_snapshots(self) -> list[VolumeSnapshot]: ...


def volume_name(environment: str, hostname: str, volume: str) -> str:
    """The cloud-side name that marks a volume as this environment's (what teardown looks for)."""
    return f"drb-{environment}-{hostname}-{volume}"


def environment_volume_prefix(environment: str) -> str:
    return f"drb-{environment}-"


def attach_named_volumes(provider: Provider, node: Node, hostname: str, wanted: Sequence[VolumeWanted],
                         node_path: Callable[[str], str]) -> list[str]:
    """Each volume created (from its snapshot) unless one of its name exists, then attached at
    `node_path(mount)` unless it already is (detached first from a node it is still attached to:
    the dead node a resurrected one replaces)."""
    if not wanted:
        return []
    driver = provider.driver()
    existing = {v.name: v for v in provider.call("list volumes", driver.list_volumes)}
    done = []
    for spec in wanted:
        name = volume_name(provider.environment, hostname, spec.name)
        volume = existing.get(name)
        if volume is None:
            snapshot = _find_snapshot(provider, spec.snapshot) if spec.snapshot else None
            volume = provider.call(f"create volume {name}",
                                   functools.partial(driver.create_volume, spec.size_gb, name, snapshot=snapshot))
        attached_to = (volume.extra or {}).get("node_id") or (volume.extra or {}).get("instance_id")
        if attached_to and attached_to != node.id:
            # Still held by the node this one replaces (a dead node whose cloud kept the attachment):
            # released first, forced where the driver can force it.
            _detach(provider, volume, name, attached_to)
        if attached_to != node.id:
            device = node_path(spec.mount)
            provider.call(f"attach volume {name}", functools.partial(driver.attach_volume, node, volume, device=device))
        done.append(f"{spec.name} at {spec.mount}" + (f" from {spec.snapshot}" if spec.snapshot else ""))
    return done


def _detach(provider: Provider, volume: Any, name: str, attached_to: str) -> None:
    from drbootstrap.providers.settings import accepted_parameters

    driver = provider.driver()
    accepted = accepted_parameters(driver.detach_volume)
    force = {"ex_force": True} if accepted is not None and "ex_force" in accepted else {}
    provider.call(f"detach volume {name} from {attached_to}", functools.partial(driver.detach_volume, volume, **force))


def destroy_named_volumes(provider: Provider) -> list[str]:
    """Destroy every volume whose name marks it as the environment's; their names."""
    driver = provider.driver()
    if not callable(getattr(driver, "list_volumes", None)):
        return []
    prefix = environment_volume_prefix(provider.environment)
    destroyed = []
    for volume in provider.call("list volumes", driver.list_volumes):
        if (volume.name or "").startswith(prefix):
            provider.call(f"destroy volume {volume.name}", functools.partial(driver.destroy_volume, volume))
            destroyed.append(volume.name)
    return destroyed


def _find_snapshot(provider: Provider, wanted: str) -> Any:
    driver = provider.driver()
    snapshots = provider.call("list snapshots", cast(_ListsSnapshots, driver).list_snapshots)
    for snapshot in snapshots:
        if wanted in (snapshot.id, snapshot.name):
            return snapshot
    raise NotFoundError(f"snapshot {wanted!r} not found at the provider",
                        hint="check the volume's `snapshot:` in the spec against the provider's snapshots")
