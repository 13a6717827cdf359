"""Which backups a run restores and which `backup --prune` deletes: pure decisions over the catalog.

Restore: per volume marked `backup:`, the good backups of the backup source environment, newest
first, narrowed by `--as-of` or `--backup`; the first is restored, the next ones are the fallbacks.
Everything the user asked for that matches nothing is refused before anything is launched.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drbootstrap.backups.catalog import BackupRecord
from drbootstrap.errors import BackupError

DAY = 86_400.0


@dataclass(frozen=True)
class RestoreRequest:
    """What `up` was asked to restore from. `backup_environment`: whose backups (a drill: production's)."""

    backup_environment: str
    as_of: float | None = None  # newest backup taken at or before this time
    backup_ids: tuple[str, ...] = ()  # these backups exactly (one per volume at most)


@dataclass(frozen=True)
class MarkedVolume:
    """A volume of the spec marked `backup:`: whose, which, and whether an older backup may be tried."""

    hostname: str
    volume: str
    fallback: bool = False


@dataclass(frozen=True)
class VolumeRestore:
    """The backups to try for one volume, newest first; empty: no backup yet (the volume starts empty)."""

    hostname: str
    volume: str
    candidates: tuple[BackupRecord, ...] = ()
    fallback: bool = False

    @property
    def chosen(self) -> BackupRecord | None:
        return self.candidates[0] if self.candidates else None


def choose_restores(catalog: Sequence[BackupRecord], marked: Iterable[MarkedVolume],
                    request: RestoreRequest) -> dict[tuple[str, str], VolumeRestore]:
    """(hostname, volume) -> what to restore, for every marked volume. Raises BackupError when an
    --as-of precedes every backup of a volume, a --backup id is unknown, or a volume asked for has none."""
    asked = bool(request.as_of is not None or request.backup_ids)
    ours = [r for r in catalog if r.environment == request.backup_environment]
    by_id = {r.id: r for r in ours}
    for backup_id in request.backup_ids:
        if backup_id not in by_id:
            raise BackupError(f"--backup {backup_id}: no backup of that id for environment "
                              f"{request.backup_environment!r}: nothing launched",
                              hint="list them with `drbootstrap backups FILE`")
        if not by_id[backup_id].good:
            raise BackupError(f"--backup {backup_id}: that backup is not good (a hook failed when it was taken): "
                              "nothing launched", hint="pick another with `drbootstrap backups FILE`")
    marked = list(marked)
    known = {(m.hostname, m.volume) for m in marked}
    for backup_id in request.backup_ids:
        record = by_id[backup_id]
        if (record.hostname, record.name) not in known:
            raise BackupError(f"--backup {backup_id} is of {record.hostname}/{record.name}, which the spec does "
                              "not mark for backup: nothing launched", hint="mark the volume with `backup:`")
    restores = {}
    for volume in marked:
        restores[(volume.hostname, volume.volume)] = _restore_for(volume, ours, request, asked)
    return restores


def _restore_for(volume: MarkedVolume, ours: Sequence[BackupRecord], request: RestoreRequest,
                 asked: bool) -> VolumeRestore:
    where = f"{volume.hostname}/{volume.volume}"
    good = sorted((r for r in ours if r.hostname == volume.hostname and r.name == volume.volume and r.good),
                  key=lambda r: (r.created_at, r.id), reverse=True)
    if not good:
        if asked:
            raise BackupError(f"{where} has no backup yet in environment {request.backup_environment!r}: "
                              "nothing launched", hint="take one with `drbootstrap backup FILE`, or drop "
                                                       "--as-of/--backup to start it empty")
        return VolumeRestore(volume.hostname, volume.volume, (), volume.fallback)
    pinned = [r for r in good if r.id in request.backup_ids]
    if pinned:
        # --backup ID: that one first; older ones remain the fallbacks.
        good = [r for r in good if r.created_at <= pinned[0].created_at]
        good.remove(pinned[0])
        good.insert(0, pinned[0])
    elif request.as_of is not None:
        good = [r for r in good if r.created_at <= request.as_of]
        if not good:
            oldest = min(r.created_at for r in ours if r.hostname == volume.hostname and r.name == volume.volume)
            raise BackupError(f"--as-of {format_time(request.as_of)} is before every backup of {where} "
                              f"(the oldest is from {format_time(oldest)}): nothing launched",
                              hint="pick a later time, or see `drbootstrap backups FILE`")
    return VolumeRestore(volume.hostname, volume.volume, tuple(good), volume.fallback)


def prunable(records: Sequence[BackupRecord], *, keep_last: int | None, max_age_days: float | None,
             now: float | None = None) -> list[BackupRecord]:
    """The backups of ONE volume that retention lets `backup --prune` delete: a good backup goes
    when it is beyond the newest `keep_last` and (if set) older than `max_age_days`, or with only
    one of the two set, by that one; a backup that is not good goes once a newer good one exists.
    The newest backup verified ok by a restore is never deleted; with neither key set, nothing is."""
    if keep_last is None and max_age_days is None:
        return []
    now = time.time() if now is None else now
    ordered = sorted(records, key=lambda r: (r.created_at, r.id), reverse=True)
    good = [r for r in ordered if r.good]
    verified = [r for r in good if r.verified_ok]
    protected = {verified[0].id} if verified else set()
    doomed = []
    for rank, record in enumerate(good):
        beyond_count = keep_last is None or rank >= keep_last
        too_old = max_age_days is None or now - record.created_at > max_age_days * DAY
        if beyond_count and too_old and record.id not in protected:
            doomed.append(record)
    newest_good = good[0].created_at if good else None
    doomed += [r for r in ordered if not r.good and newest_good is not None and r.created_at < newest_good]
    return sorted(doomed, key=lambda r: (r.created_at, r.id))


def format_time(epoch: float) -> str:
    """UTC, to the second, as --as-of accepts it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def format_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def parse_time(text: str, *, now: float | None = None) -> float:
    """--as-of: an ISO 8601 time (UTC unless it says), epoch seconds, or an age such as 2h, 30min, 1d ago."""
    from datetime import UTC, datetime

    value = text.strip()
    now = time.time() if now is None else now
    try:
        return float(value)
    except ValueError:
        pass
    for unit, seconds in (("min", 60.0), ("s", 1.0), ("h", 3600.0), ("d", DAY)):
        number = value.removesuffix(" ago").removesuffix(unit)
        if value.removesuffix(" ago").endswith(unit):
            try:
                return now - float(number) * seconds
            except ValueError:
                break
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BackupError(f"--as-of {text!r} is not a time", hint="write 2026-11-25T14:00:00Z, epoch seconds, "
                                                                   "or an age like 2h") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
