"""One command at a time changes an environment: `up`, `down`, `backup`, `drill` and `failover` hold its lock
(through drbootstrap.state, which holds a lease instead when the state is in s3); `status` reads
without it.

The lock is an flock on the environment's lock file, so the kernel releases it when its holder
dies, however it dies: a later command takes it over without anyone cleaning up. The file names
the holder (pid, host, command, since) for the one-line refusal a second command prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from drbootstrap.errors import DrbError
from drbootstrap.exit_status import ExitStatus
from drbootstrap.paths import EnvironmentPaths


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) an environment's lock."""

    pid: int
    host: str
    command: str
    since: float  # unix time

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return f"`{self.command}` (pid {self.pid} on {self.host}, since {when})"


@dataclass(frozen=True)
class HeldLock:
    """The lock this process holds; `taken_over` names a holder that died without releasing it."""

    holder: LockHolder
    taken_over: LockHolder | None = None


class EnvironmentBusy(DrbError):
    """Another command is changing the environment right now."""

    exit_status = ExitStatus.BUSY


@contextmanager
def hold_environment(paths: EnvironmentPaths, command: str, *, lock: Path | None = None) -> Iterator[HeldLock]:
    """Hold the environment's lock for `command` (e.g. "up"), or raise EnvironmentBusy at once.
    `lock`: another lock file of the environment than its site's (failover's own)."""
    lock = lock or paths.lock
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder_soon(fd)
            who = holder.describe() if holder else "another process"
            raise EnvironmentBusy(f"environment {paths.environment}: {who} is changing it now; {command} refused",
                                  hint="wait for it to finish (`drbootstrap status` works meanwhile), "
                                       "or stop that process and run this again") from None
        # A holder recorded in the file while the lock was free died without releasing it.
        previous = _read_holder(fd)
        me = LockHolder(os.getpid(), socket.gethostname(), command, time.time())
        _write_holder(fd, me)
        try:
            yield HeldLock(me, previous)
        finally:
            _write_holder(fd, None)  # released cleanly: the next holder takes over nothing
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _read_holder_soon(fd: int, wait: float = 0.5) -> LockHolder | None:
    """The holder's record; one that took the lock a moment ago may not have written it yet (a second
    `up` started beside the first was refused naming "another process"): wait that moment."""
    deadline = time.monotonic() + wait
    while True:
        holder = _read_holder(fd)
        if holder is not None or time.monotonic() >= deadline:
            return holder
        time.sleep(0.02)


def _read_holder(fd: int) -> LockHolder | None:
    try:
        raw = os.pread(fd, 4096, 0).decode()
        return LockHolder(**json.loads(raw)) if raw.strip() else None
    except (OSError, ValueError, TypeError):
        return None


def _write_holder(fd: int, holder: LockHolder | None) -> None:
    os.ftruncate(fd, 0)
    if holder is not None:
        os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)
    os.fsync(fd)
