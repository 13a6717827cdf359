"""What a backup is (BackupRecord) and how it lives at the provider: as tags on the snapshot, so the
catalog survives the loss of this controller. The tag names are shared by every provider family."""

from __future__ import annotations

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
    kind: Literal["snapshot", "dump"]
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

