"""The EC2 family's backups: snapshots of the environment's volumes, tagged as backups/catalog.py
says, so that the catalog lives at the cloud and survives the loss of this controller.

A snapshot is tagged by the request that creates it (TagSpecification) where the dialect takes
one, else by CreateTags right after. Nothing here acts on a snapshot without reading its tags
first: listing filters by the environment's tag at the cloud and again here; tagging, deleting and
copying look the snapshot up by id and refuse one that is not the environment's backup.
Every request goes through the provider's Pacing (bucket, retries, secret-free errors).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from libcloud.compute.base import VolumeSnapshot

from drbootstrap.backups.catalog import (
    CREATED_TAG,
    ENVIRONMENT_TAG,
    HOSTNAME_TAG,
    VOLUME_TAG,
    BackupRecord,
    record_from_tags,
)
from drbootstrap.errors import ProviderError
from drbootstrap.providers.ec2_resources import _unless_refused, create_tags, ec2_request, tag_specification
from drbootstrap.providers.pacing import Pacing

if TYPE_CHECKING:
    from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver

# What makes a snapshot the backup it is: the environment, node and volume it was taken of, and when.
IDENTITY_TAGS = (ENVIRONMENT_TAG, HOSTNAME_TAG, VOLUME_TAG, CREATED_TAG)
SNAPSHOT_NOT_FOUND = "InvalidSnapshot.NotFound"
GIB = 2 ** 30


def snapshot_tags(snapshot: VolumeSnapshot) -> dict[str, str]:
    return dict((snapshot.extra or {}).get("tags") or {})


def describe_snapshots(driver: BaseEC2NodeDriver, *, filters: Mapping[str, str] | None = None,
                       snapshot_ids: Iterable[str] = (), owner: str | None = "self") -> list[VolumeSnapshot]:
    """One DescribeSnapshots request (libcloud's list_snapshots takes no filters). An id the region
    does not hold gives an empty list, not an error."""
    params = {"Action": "DescribeSnapshots"}
    if owner:
        params["Owner.1"] = owner
    ids = list(snapshot_ids)
    for index, snapshot_id in enumerate(ids, start=1):
        params[f"SnapshotId.{index}"] = snapshot_id
    for index, (name, value) in enumerate((filters or {}).items(), start=1):
        params[f"Filter.{index}.Name"] = name
        params[f"Filter.{index}.Value.1"] = value
    try:
        body = ec2_request(driver, params)
    except Exception as error:  # only "no such snapshot" is an answer here; the rest goes to Pacing
        if ids and SNAPSHOT_NOT_FOUND in str(error):
            return []
        raise
    return list(driver._to_snapshots(body))


def find_snapshot(driver: BaseEC2NodeDriver, snapshot_id: str, *, pacing: Pacing,
                  owner: str | None = "self") -> VolumeSnapshot | None:
    found = pacing.call(driver, f"find snapshot {snapshot_id}",
                        lambda: describe_snapshots(driver, snapshot_ids=[snapshot_id], owner=owner))
    return next((s for s in found if s.id == snapshot_id), None)


def tagged_snapshots(driver: BaseEC2NodeDriver, tags: Mapping[str, str], *, pacing: Pacing,
                     operation: str) -> list[VolumeSnapshot]:
    """The account's own snapshots carrying every one of `tags` (filtered at the cloud, then here)."""
    found = pacing.call(driver, operation, lambda: describe_snapshots(
        driver, filters={f"tag:{key}": value for key, value in tags.items()}))
    return [s for s in found if all(snapshot_tags(s).get(k) == v for k, v in tags.items())]


def backup_tags_for(environment: str, hostname: str, volume: str, tags: Mapping[str, str], *,
                    now: float | None = None) -> dict[str, str]:
    """`tags` with the snapshot's identity made certain: the environment, node and volume are the
    ones snapshotted (a contradicting value is refused), the creation time now unless given."""
    merged = dict(tags)
    for key, value in ((ENVIRONMENT_TAG, environment), (HOSTNAME_TAG, hostname), (VOLUME_TAG, volume)):
        if merged.get(key, value) != value:
            raise ProviderError(f"snapshot of {hostname} {volume}: tag {key}={merged[key]!r} contradicts "
                                f"{value!r}, the environment, node and volume snapshotted",
                                hint="tag a backup with the environment, node and volume it is taken of")
        merged[key] = value
    merged.setdefault(CREATED_TAG, str(int(time.time() if now is None else now)))
    merged.setdefault("Name", f"drb-{environment}-{hostname}-{volume}")
    return merged


def record_from_snapshot(snapshot: VolumeSnapshot, location: str) -> BackupRecord | None:
    """The record a snapshot's tags describe (catalog.record_from_tags: None when they do not make
    it a backup); a snapshot the cloud reports as failed is recorded, not good."""
    size = int(snapshot.size) * GIB if snapshot.size is not None else None
    record = record_from_tags(str(snapshot.id), snapshot_tags(snapshot), size_bytes=size, location=location)
    if record is not None and (snapshot.extra or {}).get("state") == "error":
        return dataclasses.replace(record, good=False)
    return record


def _created_id(body: Any, operation: str) -> str:
    snapshot_id = body.findtext(".//{*}snapshotId") if hasattr(body, "findtext") else None
    if not snapshot_id:
        raise ProviderError(f"{operation}: the cloud's answer names no snapshot id",
                            hint="check the endpoint speaks the EC2 API")
    return str(snapshot_id)


def _create_tagged(driver: BaseEC2NodeDriver, params: Mapping[str, str], tags: Mapping[str, str], *,
                   operation: str, pacing: Pacing, tags_at_creation: bool, made: Any) -> str:
    """CreateSnapshot or CopySnapshot: tagged by the request itself, else tagged right after. A
    request that may have reached the cloud is looked up by its identity tags (`made`) first."""
    if tags_at_creation:
        request = {**params, **tag_specification("snapshot", tags)}
        return str(pacing.call(driver, operation, lambda: _created_id(ec2_request(driver, request), operation),
                               before_retry=_unless_refused(made)))
    # Untagged until CreateTags: an answer lost in between leaves an untagged snapshot, which
    # nothing here will ever list, tag or delete.
    snapshot_id = str(pacing.call(driver, operation, lambda: _created_id(ec2_request(driver, params), operation)))
    pacing.call(driver, f"tag snapshot {snapshot_id}", lambda: create_tags(driver, snapshot_id, tags),
                transient_codes=(SNAPSHOT_NOT_FOUND,))
    return snapshot_id


def create_snapshot(driver: BaseEC2NodeDriver, volume_id: str, tags: Mapping[str, str], *, pacing: Pacing,
                    tags_at_creation: bool = True) -> str:
    """Snapshot `volume_id` tagged with `tags` (which hold IDENTITY_TAGS); the snapshot id."""
    identity = {key: tags[key] for key in IDENTITY_TAGS}

    def made() -> str | None:
        found = tagged_snapshots(driver, identity, pacing=pacing, operation=f"find snapshot of {volume_id}")
        return str(found[0].id) if found else None

    params = {"Action": "CreateSnapshot", "VolumeId": volume_id,
              "Description": f"drbootstrap backup of {identity[HOSTNAME_TAG]} {identity[VOLUME_TAG]}"}
    return _create_tagged(driver, params, tags, operation=f"snapshot volume {volume_id}", pacing=pacing,
                          tags_at_creation=tags_at_creation, made=made)


def copy_snapshot(destination: BaseEC2NodeDriver, snapshot_id: str, source_region: str, tags: Mapping[str, str], *,
                  pacing: Pacing, tags_at_creation: bool = True) -> str:
    """The copy of `snapshot_id` (from `source_region`) in `destination`'s region, with `tags`: the
    copy already there (same identity tags) if an earlier copy made it, else a new one."""
    identity = {key: tags[key] for key in IDENTITY_TAGS}
    region = destination.region_name

    def made() -> str | None:
        found = tagged_snapshots(destination, identity, pacing=pacing,
                                 operation=f"find copy of {snapshot_id} in {region}")
        return str(sorted(found, key=lambda s: str(s.id))[0].id) if found else None

    existing = made()
    if existing is not None:
        return existing
    params = {"Action": "CopySnapshot", "SourceRegion": source_region, "SourceSnapshotId": snapshot_id,
              "Description": f"drbootstrap copy of {snapshot_id} from {source_region}"}
    return _create_tagged(destination, params, tags, operation=f"copy snapshot {snapshot_id} to {region}",
                          pacing=pacing, tags_at_creation=tags_at_creation, made=made)


def delete_snapshot(driver: BaseEC2NodeDriver, snapshot_id: str, *, pacing: Pacing) -> None:
    """DeleteSnapshot; a delete whose answer was lost is done if the snapshot is gone."""
    def gone() -> bool | None:
        return True if find_snapshot(driver, snapshot_id, pacing=pacing) is None else None

    pacing.call(driver, f"delete snapshot {snapshot_id}",
                lambda: ec2_request(driver, {"Action": "DeleteSnapshot", "SnapshotId": snapshot_id}),
                before_retry=_unless_refused(gone))
