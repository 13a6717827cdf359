"""The journal: what has been done for one environment, written atomically after every step.

`up` after a crash reads it to resume; `down` reads it to know what the environment owns. One
JSON file per environment (0600) in the state directory; with remote state (drbootstrap.state)
every write also goes to the remote copy, which is the truth. Holds no secrets: only names, provider
ids, addresses, step states, timings and the small typed facts steps leave for later steps.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from drbootstrap.errors import DrbError, StateWriteError
from drbootstrap.exit_status import ExitStatus
from drbootstrap.paths import EnvironmentPaths, write_private_file
from drbootstrap.plan import Step

__all__ = ["Fact", "Journal", "JournalData", "JournalError", "NodeRecord", "Step", "StepRecord", "StepState"]

JOURNAL_VERSION = 1


class StepState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


Fact = bool | int | str  # a typed fact a step leaves for later steps (e.g. autosign_armed)


@dataclass
class StepRecord:
    state: StepState
    started_at: float
    finished_at: float | None = None
    detail: str = ""  # one line for people
    facts: dict[str, Fact] = field(default_factory=dict)  # for later steps: never parse `detail`

    @property
    def seconds(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


@dataclass
class NodeRecord:
    hostname: str
    role: str
    provider_id: str | None = None  # the cloud's id once launched
    client_token: str | None = None  # the idempotency token the launch used
    generation: int = 0  # bumped when a node is destroyed so a relaunch gets a fresh token
    address: str | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)

    def is_done(self, step: Step) -> bool:
        record = self.steps.get(step)
        return record is not None and record.state is StepState.DONE


@dataclass
class JournalData:
    environment: str
    spec_path: str = ""
    created_at: float = field(default_factory=time.time)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    version: int = JOURNAL_VERSION
    # What the run resolved once for the whole environment before making anything (the image a
    # name pattern gave: `image:LOGICAL`), so that a resumed run uses the same; cleared by `down`.
    resolved: dict[str, Fact] = field(default_factory=dict)


class JournalError(DrbError):
    """The journal file is unreadable or from an incompatible version."""

    exit_status = ExitStatus.INVALID_SPEC


class JournalReplica(Protocol):
    """Another copy every write also goes to (remote state); it may refuse (FencedError, StateWriteError)."""

    def check(self) -> None:
        """Raise if this process may no longer write (a newer holder exists): before the file is touched."""

    def write(self, text: str) -> None: ...


class Journal:
    """Thread-safe access to one environment's journal; every change is on disk (atomically) before
    the call that made it returns. Changes made while a write is under way share the next write
    (group commit): with hundreds of nodes in flight, one write of the whole file per change would
    serialise them all behind the disk."""

    def __init__(self, paths: EnvironmentPaths, data: JournalData) -> None:
        self.paths = paths  # the environment's other files (the report goes beside the journal)
        self.path = paths.journal
        self.data = data
        self._lock = threading.Lock()  # guards data
        self._write_lock = threading.Lock()  # one writer of the file at a time
        self._changes = 0  # changes made to data (under _lock)
        self._written = 0  # changes the file holds (under _write_lock)
        self.replica: JournalReplica | None = None  # remote state: written after the file, under _write_lock

    @classmethod
    def open(cls, state_dir: Path, environment: str, spec_path: str = "") -> Journal:
        return cls.at(EnvironmentPaths(state_dir, environment), spec_path)

    @classmethod
    def at(cls, paths: EnvironmentPaths, spec_path: str = "") -> Journal:
        """The environment's journal as its file says (an empty one if there is no file yet)."""
        if paths.journal.exists():
            return cls(paths, _load(paths.journal))
        return cls(paths, JournalData(environment=paths.environment, spec_path=spec_path))

    def node(self, hostname: str, role: str = "") -> NodeRecord:
        """The record for a node, created (not yet written) if the journal has none."""
        with self._lock:
            record = self.data.nodes.get(hostname)
            if record is None:
                record = self.data.nodes[hostname] = NodeRecord(hostname=hostname, role=role)
            return record

    def update_node(self, hostname: str, **fields: Any) -> None:
        with self._lock:
            record = self.data.nodes[hostname]
            for name, value in fields.items():
                if not hasattr(record, name):
                    raise AttributeError(f"NodeRecord has no field {name!r}")
                setattr(record, name, value)
            change = self._changed()
        self._commit(change)

    def start_step(self, hostname: str, step: Step) -> None:
        with self._lock:
            self.data.nodes[hostname].steps[step] = StepRecord(StepState.RUNNING, time.time())
            change = self._changed()
        self._commit(change)

    def finish_step(self, hostname: str, step: Step, *, ok: bool = True, detail: str = "",
                    facts: dict[str, Fact] | None = None) -> None:
        with self._lock:
            steps = self.data.nodes[hostname].steps
            record = steps.get(step) or StepRecord(StepState.RUNNING, time.time())
            record.state = StepState.DONE if ok else StepState.FAILED
            record.finished_at = time.time()
            record.detail = detail
            record.facts = dict(facts or {})
            steps[step] = record
            change = self._changed()
        self._commit(change)

    def record_resolved(self, values: dict[str, Fact], *, replace: bool = False) -> None:
        """Add to (or, `replace`, set) what the environment's run resolved once (JournalData.resolved)."""
        with self._lock:
            self.data.resolved = dict(values) if replace else {**self.data.resolved, **values}
            change = self._changed()
        self._commit(change)

    def forget_step(self, hostname: str, step: Step) -> None:
        """Make a completed step run again (`up --redo STEP`)."""
        with self._lock:
            self.data.nodes[hostname].steps.pop(step, None)
            change = self._changed()
        self._commit(change)

    def forget_node(self, hostname: str) -> None:
        """The node is gone (destroyed): keep its generation so a relaunch gets a new token."""
        with self._lock:
            record = self.data.nodes.get(hostname)
            if record is None:
                return
            self.data.nodes[hostname] = NodeRecord(
                hostname=hostname, role=record.role, generation=record.generation + 1
            )
            change = self._changed()
        self._commit(change)

    def flush(self) -> None:
        with self._lock:
            change = self._changed()
        self._commit(change)

    def _changed(self) -> int:
        """Count a change to data (the caller holds _lock); its number, for _commit."""
        self._changes += 1
        return self._changes

    def _commit(self, change: int) -> None:
        """Return once the file holds change number `change`: written here, or by a write that
        another thread started after it was made."""
        with self._write_lock:
            if self._written >= change:
                return
            with self._lock:
                snapshot, upto = _to_json(self.data), self._changes
            # Compact: the C encoder (indent= falls back to the pure-Python one, 4x slower).
            text = json.dumps(snapshot, sort_keys=True)
            if self.replica is not None:
                self.replica.check()
            try:
                write_private_file(self.path, text)
            except OSError as error:  # disk full, read-only: the file still holds the last write
                raise StateWriteError(
                    f"cannot write the journal {self.path}: {error.strerror or error}",
                    hint="free space in the state directory (DRB_STATE_DIR), then run `drbootstrap up` "
                         "again: it resumes from the last step the journal holds") from None
            if self.replica is not None:
                self.replica.write(text)
            self._written = upto


def _to_json(data: JournalData) -> dict[str, Any]:
    """What dataclasses.asdict gives, at a fifteenth of its cost (it deep-copies every value):
    this runs once per journal write, over every node."""
    return {**vars(data), "resolved": dict(data.resolved), "nodes": {
        hostname: {**vars(record), "steps": {step: {**vars(rec), "facts": dict(rec.facts)}
                                             for step, rec in record.steps.items()}}
        for hostname, record in data.nodes.items()}}


def _load(path: Path) -> JournalData:
    """The journal at PATH, every field checked; JournalError names the line and column to fix."""
    from drbootstrap.journal_reader import read_journal_file

    data: JournalData = read_journal_file(path, _format())
    return data


def parse_journal(body: bytes, where: str) -> JournalData:
    """A journal read from elsewhere (remote state), checked like a file; WHERE names it in errors."""
    from drbootstrap.journal_reader import read_journal_text

    data: JournalData = read_journal_text(body.decode("utf-8", "replace"), where, _format())
    return data


def _format() -> Any:
    from drbootstrap.journal_reader import JournalFormat

    return JournalFormat(root=JournalData, version=JOURNAL_VERSION, key_kinds={"steps": Step}, error=JournalError)
