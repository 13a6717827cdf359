"""Remote (s3) state for one environment: the remote is the truth, the state directory a working copy.

At the start of a command the working copy is made from the remote: the journal, and the keys,
unsealed (processes need files: ssh, the broker's TLS). Every journal write then goes to the
remote too, fenced by the lease's generation (JournalReplica), and the keys the run makes are
sealed and sent before the journal entry that may rely on them. Reports are kept as a history.

Remote layout under <prefix>/<environment>/: lease.json (one for the environment, every site),
journal.json (metadata: the writer's generation), sealed/<file> (AES-GCM),
reports/<UTC time>/report.{json,md,html}; a site other than the primary has its own journal, keys
and reports under sites/<site>/, as it has its own files in the state directory.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from drbootstrap.errors import DrbError, FencedError
from drbootstrap.paths import PRIMARY_SITE, EnvironmentPaths, write_private_file
from drbootstrap.spec.operations import StateSpec
from drbootstrap.state.lease import Lease
from drbootstrap.state.s3 import PreconditionFailed, S3Objects, StateUnreachable, StoredObject
from drbootstrap.state.sealed import parse_key, seal, unseal

JOURNAL_NAME = "journal.json"
SEALED = "sealed/"
REPORTS = "reports/"


def secret_files(paths: EnvironmentPaths) -> list[Path]:
    """The environment's generated keys and the files beside them a run needs (all sealed remotely)."""
    found = [p for p in (paths.psk, paths.client_key, paths.ssh_private_key, paths.broker_ca, paths.broker_ca_chain,
                        paths.broker_ca_key, paths.broker_issuer, paths.broker_issuer_key)
             if p.is_file()]
    if paths.keys.is_dir():
        found += sorted(p for p in paths.keys.rglob("*") if p.is_file() and not p.name.startswith("."))
    return found


class RemoteState:
    """One environment's objects in the bucket, and its working copy in the state directory."""

    def __init__(self, settings: StateSpec, paths: EnvironmentPaths) -> None:
        assert settings.encryption_key is not None  # the spec requires it for s3
        self.settings, self.paths = settings, paths
        self.store = S3Objects(settings, paths.environment)
        self.key = parse_key(settings.encryption_key.reveal())
        site = "" if paths.site == PRIMARY_SITE else f"sites/{paths.site}/"
        self.journal_name, self.sealed, self.reports = site + JOURNAL_NAME, site + SEALED, site + REPORTS

    def read_journal(self) -> StoredObject | None:
        return self.store.get(self.journal_name)

    def restore_working_copy(self, *, read_only: bool = False) -> Restored:
        """Make the state directory hold what the remote holds (journal and keys). A working copy
        holding writes the remote missed (its endpoint failed) wins if nobody wrote since; local
        state that was never sent is refused (state migrate moves it). READ_ONLY (status) leaves
        the local journal alone and fetches only missing keys."""
        remote = self.read_journal()
        remote_etag = remote.etag if remote is not None else ""
        restored = Restored(remote.etag if remote else None, remote.body if remote else None)
        if read_only:
            pass
        elif _read_pending(self.paths) == remote_etag and self.paths.journal.exists():
            restored.body = self.paths.journal.read_bytes()  # the remote missed its last writes
        elif remote is None and self.paths.journal.exists():
            raise DrbError(f"environment {self.paths.environment}: the state directory holds a journal but "
                           f"{self.store.where} holds none",
                           hint="move it there first: drbootstrap state migrate FILE --to s3")
        elif remote is not None:
            write_private_file(self.paths.journal, remote.body)
        self.restore_keys(only_missing=read_only)
        return restored

    def restore_keys(self, *, only_missing: bool = False) -> None:
        for name in self.store.names(self.sealed):
            target = self.paths.root / name[len(self.sealed):]
            if only_missing and target.exists():
                continue
            blob = self.store.get(name)
            if blob is not None:
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_private_file(target, unseal(self.key, name, blob.body))

    def push_keys(self, files: list[Path]) -> None:
        for path in files:
            name = self.sealed + path.relative_to(self.paths.root).as_posix()
            self.store.put(name, seal(self.key, name, path.read_bytes()))

    def push_reports(self, files: list[Path], started_at: float) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started_at))
        for path in files:
            self.store.put(f"{self.reports}{stamp}/{path.name}", path.read_bytes())

    def replica(self, lease: Lease, restored: Restored) -> JournalReplica:
        """The fenced journal writer for LEASE's holder; stamps the remote journal with its generation
        at once, so that no write of an earlier holder succeeds from now on."""
        replica = JournalReplica(self, lease, restored.etag)
        if restored.body is not None:
            replica.write_bytes(restored.body)
        return replica


@dataclass
class Restored:
    """The remote journal's ETag as read, and the journal this holder starts from (None: none yet)."""

    etag: str | None
    body: bytes | None


class JournalReplica:
    """Sends every journal write to the remote: the lease checked first, then the keys the run has
    made since the last write (sealed), then the journal itself with If-Match on the ETag this
    holder last wrote. A write refused because a newer holder wrote raises FencedError."""

    def __init__(self, remote: RemoteState, lease: Lease, etag: str | None) -> None:
        self.remote, self.lease, self.etag = remote, lease, etag
        self._sequence = 0
        self._keys: dict[Path, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def check(self) -> None:
        self.lease.check()

    def write(self, text: str) -> None:
        self.write_bytes(text.encode())

    def write_bytes(self, body: bytes) -> None:
        with self._lock:
            try:
                self.lease.check()
                self._push_changed_keys()
                self._put(body)
            except StateUnreachable:
                _write_pending(self.remote.paths, self.etag)
                raise
            _clear_pending(self.remote.paths)

    def _push_changed_keys(self) -> None:
        changed = []
        for path in secret_files(self.remote.paths):
            stat = path.stat()
            signature = (stat.st_mtime_ns, stat.st_size)
            if self._keys.get(path) != signature:
                changed.append(path)
                self._keys[path] = signature
        if changed:
            self.remote.push_keys(changed)

    def _put(self, body: bytes) -> None:
        store, generation = self.remote.store, self.lease.generation
        self._sequence += 1
        write_id = f"{generation}:{os.getpid()}:{self._sequence}"
        metadata = {"generation": str(generation), "write": write_id}
        while True:
            try:
                self.etag = store.put(self.remote.journal_name, body, metadata=metadata, if_match=self.etag,
                                      if_none_match=self.etag is None)
                return
            except PreconditionFailed:
                current = store.head(self.remote.journal_name)
                if current is None:
                    self.etag = None
                    continue
                if current.metadata.get("write") == write_id:  # ours: only its answer was lost
                    self.etag = current.etag
                    return
                theirs = int(current.metadata.get("generation", "0") or 0)
                if theirs > generation:
                    raise self.lease.fenced(f"the journal was written by generation {theirs}") from None
                self.lease.check()  # an older holder wrote after this one took the lease: overwrite it
                self.etag = current.etag


def _read_pending(paths: EnvironmentPaths) -> str | None:
    try:
        data = json.loads(paths.remote_state.read_text())
        return str(data["based_on"]) if data.get("pending") else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_pending(paths: EnvironmentPaths, etag: str | None) -> None:
    try:
        write_private_file(paths.remote_state, json.dumps({"pending": True, "based_on": etag or ""}))
    except OSError:
        pass


def _clear_pending(paths: EnvironmentPaths) -> None:
    if paths.remote_state.exists():
        paths.remote_state.unlink(missing_ok=True)


__all__ = ["FencedError", "JournalReplica", "RemoteState", "secret_files"]
