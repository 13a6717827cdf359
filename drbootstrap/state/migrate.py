"""`drbootstrap state migrate FILE --to s3`: move an environment's local state to its s3 state.

Under both the local lock and a fresh lease: the keys (sealed), the journal (created only if the
remote holds none: never over another environment's state) and the reports are sent; the state
directory stays as the first working copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from drbootstrap.environment_lock import hold_environment
from drbootstrap.errors import DrbError
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.spec.operations import StateSpec


@dataclass
class Migrated:
    where: str
    journal: bool = False
    keys: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)


def migrate_to_s3(settings: StateSpec, paths: EnvironmentPaths) -> Migrated:
    from drbootstrap.state.lease import take_lease
    from drbootstrap.state.remote import RemoteState, secret_files
    from drbootstrap.state.s3 import PreconditionFailed

    if settings.backend != "s3":
        raise DrbError("state migrate --to s3: the spec's state: block is not s3",
                       hint="write state: {backend: s3, bucket: ..., encryption_key: ...} or pass --to s3://BUCKET/PREFIX")
    with hold_environment(paths, "state migrate"):
        if not paths.journal.exists():
            raise DrbError(f"environment {paths.environment}: no journal in {paths.root} to migrate",
                           hint="check --state-dir (or DRB_STATE_DIR); a new environment needs no migration")
        remote = RemoteState(settings, paths)
        lease = take_lease(remote.store, "state migrate", seconds=settings.lease_seconds, take_over=False)
        try:
            result = Migrated(remote.store.where)
            files = secret_files(paths)
            remote.push_keys(files)
            result.keys = [p.relative_to(paths.root).as_posix() for p in files]
            try:
                remote.store.put(remote.journal_name, paths.journal.read_bytes(), if_none_match=True,
                                 metadata={"generation": str(lease.generation), "write": f"{lease.generation}:migrate"})
            except PreconditionFailed:
                raise DrbError(f"environment {paths.environment}: {remote.store.where} already holds a journal; "
                               "nothing overwritten", hint="the remote is the truth: run with that state, or "
                               "pick another prefix") from None
            result.journal = True
            reports = [p for p in (paths.report_json, paths.report_markdown, paths.report_html) if p.exists()]
            if reports:
                remote.push_reports(reports, min(p.stat().st_mtime for p in reports) or time.time())
                result.reports = [p.name for p in reports]
            return result
        finally:
            lease.release()
