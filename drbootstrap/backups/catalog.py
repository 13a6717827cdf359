"""What a backup is (BackupRecord) and how it lives at the provider: as tags on the snapshot, so the
catalog survives the loss of this controller. The tag names are shared by every provider family."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

TAG_PREFIX = "drbootstrap:"
ENVIRONMENT_TAG = "drbootstrap:environment"  # the environment the backup was taken FROM
HOSTNAME_TAG = "drbootstrap:hostname"
VOLUME_TAG = "drbootstrap:volume"
CREATED_TAG = "drbootstrap:backup-created"  # epoch seconds, an integer string
MANIFEST_TAG = "drbootstrap:manifest"  # sha256 hex of the content manifest taken at backup time
VERIFIED_TAG = "drbootstrap:verified"  # "ok:<epoch>" or "failed:<epoch>"; absent when never restored
GOOD_TAG = "drbootstrap:good"  # "true" / "false"

BACKUP_TAGS = (ENVIRONMENT_TAG, HOSTNAME_TAG, VOLUME_TAG, CREATED_TAG, MANIFEST_TAG, VERIFIED_TAG, GOOD_TAG)


@dataclass(frozen=True)
class BackupRecord:
    """One backup the environment can restore from: a volume snapshot or an application dump."""
    id: str                        # the provider's snapshot id, or the object's key for a dump
    kind: Literal["snapshot", "dump", "master"]  # master: the master's own state (backups.master_state)
    environment: str               # the environment it was taken FROM (production's name)
    hostname: str                  # node it belongs to
    name: str                      # volume name (snapshot) or dump name (dump)
    created_at: float              # epoch seconds
    size_bytes: int | None
    manifest_digest: str | None    # sha256 hex of the content manifest taken at backup time
    verified_at: float | None = None
    verified_ok: bool | None = None
    location: str = ""             # "local", "ec2:<region>", "bucket:<container>/<prefix>"
    good: bool = True              # False: recorded but not usable (a hook failed, incomplete)


def backup_tags(record: BackupRecord) -> dict[str, str]:
    """The tags a snapshot carries for `record` (the verification tag only once it was restored)."""
    tags = {
        ENVIRONMENT_TAG: record.environment,
        HOSTNAME_TAG: record.hostname,
        VOLUME_TAG: record.name,
        CREATED_TAG: str(int(record.created_at)),
        GOOD_TAG: "true" if record.good else "false",
    }
    if record.manifest_digest:
        tags[MANIFEST_TAG] = record.manifest_digest
    if record.verified_ok is not None and record.verified_at is not None:
        tags.update(verified_tags(record.verified_ok, record.verified_at))
    return tags


def verified_tags(ok: bool, at: float) -> dict[str, str]:
    """The tag a restore leaves on the snapshot it restored from."""
    return {VERIFIED_TAG: f"{'ok' if ok else 'failed'}:{int(at)}"}


def record_from_tags(snapshot_id: str, tags: Mapping[str, str], *, size_bytes: int | None = None,
                     location: str = "") -> BackupRecord | None:
    """The record a snapshot's tags describe; None when they do not make it one of ours (a tag is
    missing or unreadable: never guess what someone else's snapshot is)."""
    try:
        environment, hostname, volume = tags[ENVIRONMENT_TAG], tags[HOSTNAME_TAG], tags[VOLUME_TAG]
        created_at = float(int(tags[CREATED_TAG]))
    except (KeyError, ValueError):
        return None
    if not (environment and hostname and volume):
        return None
    verified_at, verified_ok = _parse_verified(tags.get(VERIFIED_TAG, ""))
    return BackupRecord(id=snapshot_id, kind="snapshot", environment=environment, hostname=hostname, name=volume,
                        created_at=created_at, size_bytes=size_bytes, manifest_digest=tags.get(MANIFEST_TAG) or None,
                        verified_at=verified_at, verified_ok=verified_ok, location=location,
                        good=tags.get(GOOD_TAG, "false") == "true")


def _parse_verified(value: str) -> tuple[float | None, bool | None]:
    outcome, _, at = value.partition(":")
    if outcome not in ("ok", "failed"):
        return None, None
    try:
        return float(int(at)), outcome == "ok"
    except ValueError:
        return None, None
