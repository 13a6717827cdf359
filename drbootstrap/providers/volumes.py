"""Volumes on clouds whose volumes carry no tags (the local cloud, generic libcloud): a volume is
the environment's by its name, made once per node and volume (found again by name), then attached.
Their backups are snapshots tagged at creation (ex_metadata), listed and re-tagged by those tags."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from libcloud.compute.base import Node, VolumeSnapshot

from drbootstrap.backups.catalog import ENVIRONMENT_TAG, BackupRecord, record_from_tags
from drbootstrap.errors import NotFoundError, ProviderError
from drbootstrap.providers.settings import accepted_parameters

if TYPE_CHECKING:
    from drbootstrap.providers.base import Provider
    from drbootstrap.providers.values import VolumeWanted


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


def discard_named_volume(provider: Provider, hostname: str, volume: str) -> bool:
    """Detach and destroy the environment's volume `volume` of `hostname` (a restore that failed
    verification makes way for an older backup); False when there is none."""
    driver = provider.driver()
    name = volume_name(provider.environment, hostname, volume)
    for found in provider.call("list volumes", driver.list_volumes):
        if found.name == name:
            if (found.extra or {}).get("node_id") or (found.extra or {}).get("instance_id"):
                provider.call(f"detach volume {name}", functools.partial(driver.detach_volume, found))
            provider.call(f"destroy volume {name}", functools.partial(driver.destroy_volume, found))
            return True
    return False


# ---- backups: snapshots tagged per drbootstrap.backups.catalog ----------------------------------


def snapshot_tags(snapshot: VolumeSnapshot) -> dict[str, str]:
    """A snapshot's tags as its driver reports them (EC2 and the local cloud `tags`, others `metadata`)."""
    for key in ("tags", "metadata", "labels"):
        value = (snapshot.extra or {}).get(key)
        if isinstance(value, Mapping) and value:
            return {str(k): str(v) for k, v in value.items()}
    return {}


def snapshot_named_volume(provider: Provider, hostname: str, volume: str, tags: Mapping[str, str]) -> str:
    """Snapshot the environment's volume of `hostname` named `volume`, tagged at creation; its id."""
    driver = provider.driver()
    name = volume_name(provider.environment, hostname, volume)
    found = next((v for v in provider.call("list volumes", driver.list_volumes) if v.name == name), None)
    if found is None:
        raise NotFoundError(f"{hostname}: the provider has no volume {volume} ({name}) to back up",
                            hint="run `drbootstrap up` first: backup snapshots the volumes up made")
    create = getattr(driver, "create_volume_snapshot", None)
    accepted = accepted_parameters(create) if callable(create) else set()
    if not callable(create) or (accepted is not None and "ex_metadata" not in accepted):
        raise ProviderError(f"the {driver.name} driver cannot make tagged volume snapshots",
                            hint="backups need create_volume_snapshot with ex_metadata (tags)")
    snapshot_name = f"{name}-{int(time.time())}"
    snapshot = provider.call(f"snapshot volume {name}",
                             functools.partial(create, found, name=snapshot_name, ex_metadata=dict(tags)))
    return cast(str, snapshot.id)


def list_tagged_backups(provider: Provider, environment: str) -> list[BackupRecord]:
    """Every snapshot tagged as taken from `environment`, as records (from the tags only), oldest first."""
    records = []
    for snapshot in _snapshots(provider):
        tags = snapshot_tags(snapshot)
        if tags.get(ENVIRONMENT_TAG) != environment:
            continue
        size = (snapshot.extra or {}).get("size_bytes")
        if size is None and snapshot.size:
            size = int(snapshot.size) * 1024**3
        record = record_from_tags(snapshot.id, tags, size_bytes=size, location=backup_location(provider))
        if record is not None:
            records.append(record)
    return sorted(records, key=lambda r: (r.created_at, r.id))


def tag_snapshot(provider: Provider, snapshot_id: str, tags: Mapping[str, str]) -> None:
    """Add or replace tags on a snapshot that carries our tags (a drill tags production's, verified)."""
    driver = provider.driver()
    snapshot = _our_snapshot(provider, snapshot_id)
    create_tags = getattr(driver, "ex_create_tags", None)
    if not callable(create_tags):
        raise ProviderError(f"the {driver.name} driver cannot tag snapshots (no ex_create_tags)")
    provider.call(f"tag snapshot {snapshot_id}", functools.partial(create_tags, snapshot, dict(tags)))


def delete_snapshot(provider: Provider, snapshot_id: str) -> None:
    """Delete one snapshot, only if it is a backup of the provider's `backups_environment`."""
    driver = provider.driver()
    snapshot = _our_snapshot(provider, snapshot_id)
    owner = snapshot_tags(snapshot).get(ENVIRONMENT_TAG)
    if owner != provider.backups_environment:
        raise ProviderError(f"snapshot {snapshot_id} belongs to environment {owner!r}, "
                            f"not {provider.backups_environment!r}: "
                            "not deleted", hint="prune backups from the environment that took them")
    provider.call(f"delete snapshot {snapshot_id}", functools.partial(cast(Any, driver).destroy_volume_snapshot,
                                                                      snapshot))


def backup_location(provider: Provider) -> str:
    """Where the provider keeps its snapshots, for the catalog: its name and region."""
    region = provider.settings.region
    return f"{provider.settings.name}:{region}" if region else str(provider.settings.name)


def _snapshots(provider: Provider) -> list[VolumeSnapshot]:
    driver = provider.driver()
    if not callable(getattr(driver, "list_snapshots", None)):
        raise ProviderError(f"the {driver.name} driver cannot list volume snapshots",
                            hint="backups need a provider whose driver has volume snapshots")
    return list(provider.call("list snapshots", cast(_ListsSnapshots, driver).list_snapshots))


def _our_snapshot(provider: Provider, snapshot_id: str) -> VolumeSnapshot:
    snapshot = next((s for s in _snapshots(provider) if s.id == snapshot_id), None)
    if snapshot is None:
        raise NotFoundError(f"snapshot {snapshot_id} not found at the provider",
                            hint="list the environment's backups with `drbootstrap backups FILE`")
    if ENVIRONMENT_TAG not in snapshot_tags(snapshot):
        raise ProviderError(f"snapshot {snapshot_id} is not a drbootstrap backup (no {ENVIRONMENT_TAG} tag): "
                            "left alone", hint="drbootstrap touches only the snapshots it tagged")
    return snapshot


class NamedVolumeBackups:
    """The backup methods of Provider for clouds whose volumes are the environment's by name and
    whose snapshots take tags (the local cloud, generic libcloud drivers that have them)."""

    def snapshot_volume(self, hostname: str, volume: str, tags: Mapping[str, str]) -> str:
        return snapshot_named_volume(cast("Provider", self), hostname, volume, tags)

    def list_backups(self, environment: str) -> list[BackupRecord]:
        return list_tagged_backups(cast("Provider", self), environment)

    def tag_backup(self, snapshot_id: str, tags: Mapping[str, str]) -> None:
        tag_snapshot(cast("Provider", self), snapshot_id, tags)

    def delete_backup(self, snapshot_id: str) -> None:
        delete_snapshot(cast("Provider", self), snapshot_id)
