"""The lease on an environment kept in S3: who changes it now, since when, and until when.

One object per environment: the holder (user, host, pid, command), a fencing generation and an
expiry. It is created with If-None-Match: * and changed only with If-Match on the ETag read, so
of two operators racing for it exactly one wins. The holder renews it in a thread; a run that
stops renewing (killed, paused, cut off) loses it at its expiry, and whoever takes it over raises
the generation: every journal write of the old holder is then refused (journal_replica.py).
A released lease keeps its generation, so generations only ever grow.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass

from drbootstrap.environment_lock import EnvironmentBusy
from drbootstrap.errors import FencedError
from drbootstrap.state.s3 import PreconditionFailed, S3Objects, StateUnreachable

LEASE_NAME = "lease.json"


@dataclass(frozen=True)
class LeaseRecord:
    """The lease object as written."""

    user: str
    host: str
    pid: int
    command: str
    generation: int
    since: float  # unix time the holder took it
    renewed_at: float
    expires_at: float
    released: bool = False

    def describe(self) -> str:
        return f"`{self.command}` by {self.user} (pid {self.pid} on {self.host}, since {_utc(self.since)})"

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseRecord | None:
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError):
            return None  # not a lease this tool wrote: treated as expired, taken with If-Match


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


@dataclass
class LeaseView:
    """What another operator sees: the record and its ETag (None when there is no lease yet)."""

    record: LeaseRecord | None
    etag: str | None

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        record = self.record
        if record is None:
            return "free (never held)"
        if record.released:
            return f"free (last held by {record.describe()}, generation {record.generation})"
        left = record.expires_at - now
        state = f"lease expires in {left:.0f} s" if left > 0 else f"lease EXPIRED {-left:.0f} s ago"
        return f"held by {record.describe()}, generation {record.generation}; {state}"

    def live(self, now: float) -> bool:
        return self.record is not None and not self.record.released and self.record.expires_at > now


def read_lease(store: S3Objects) -> LeaseView:
    found = store.get(LEASE_NAME)
    if found is None:
        return LeaseView(None, None)
    return LeaseView(LeaseRecord.from_bytes(found.body), found.etag)


class Lease:
    """The lease this process holds. `check()` before every journal write: it raises FencedError
    once this holder has lost it (and proves it still holds it when its time is up)."""

    def __init__(self, store: S3Objects, record: LeaseRecord, etag: str, seconds: int,
                 taken_over: LeaseRecord | None) -> None:
        self.store, self.record, self.etag, self.seconds = store, record, etag, seconds
        self.taken_over = taken_over  # an expired holder this one replaced
        self._deadline = time.monotonic() + seconds * 0.9  # conservative: counted from before the write
        self._lock = threading.Lock()
        self._fenced: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def generation(self) -> int:
        return self.record.generation

    def fenced(self, why: str) -> FencedError:
        return FencedError(f"environment {self.store.root.rsplit('/', 1)[-1]}: this `{self.record.command}` "
                           f"(generation {self.generation}) lost its lease: {why}; it writes nothing more",
                           hint="`drbootstrap status` names the holder now; run again with --take-over once "
                                "its lease has expired")

    def check(self) -> None:
        """Raise FencedError unless this process still holds the lease."""
        with self._lock:
            if self._fenced is not None:
                raise self.fenced(self._fenced)
            if time.monotonic() < self._deadline:
                return
        self.renew(budget=self.store.retry_seconds)  # its time is up: prove nobody took it meanwhile
        with self._lock:
            if self._fenced is not None:
                raise self.fenced(self._fenced)

    def renew(self, *, budget: float) -> None:
        """Extend the lease (If-Match on its ETag); a lost condition fences this holder for good."""
        with self._lock:
            if self._fenced is not None:
                return
            started = time.monotonic()
            now = time.time()
            record = LeaseRecord(**{**asdict(self.record), "renewed_at": now, "expires_at": now + self.seconds})
            try:
                self.etag = self.store.put(LEASE_NAME, record.to_bytes(), if_match=self.etag, budget=budget)
            except PreconditionFailed:
                current = read_lease(self.store).record
                who = current.describe() if current is not None else "another holder"
                self._fenced = f"{who} holds it now"
                return
            self.record, self._deadline = record, started + self.seconds * 0.9

    def start_renewing(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.seconds / 3):
                try:
                    self.renew(budget=self.seconds / 3)
                except StateUnreachable:
                    continue  # the next tick tries again; a journal write proves the lease itself
                if self._fenced is not None:
                    return
        self._thread = threading.Thread(target=loop, name="drb-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing; mark the lease free (keeping its generation) unless it was lost."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            if self._fenced is not None:
                return
            record = LeaseRecord(**{**asdict(self.record), "released": True, "renewed_at": time.time()})
            try:
                self.store.put(LEASE_NAME, record.to_bytes(), if_match=self.etag, budget=10)
            except (PreconditionFailed, StateUnreachable):
                pass  # lost or unreachable: it expires on its own


def me(command: str, generation: int, seconds: int) -> LeaseRecord:
    now = time.time()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return LeaseRecord(user=user, host=socket.gethostname(), pid=os.getpid(), command=command,
                       generation=generation, since=now, renewed_at=now, expires_at=now + seconds)


def take_lease(store: S3Objects, command: str, *, seconds: int, take_over: bool,
               take_expired: bool = False) -> Lease:
    """Take the environment's lease for `command`, or raise EnvironmentBusy naming its holder.

    A free (never held or released) lease is taken at once. A live one is refused; with
    `take_over` this waits until its expiry and takes it only if its holder did not renew it
    meanwhile. An expired one needs `take_over` (or `take_expired`, a spec's policy)."""
    environment = store.root.rsplit("/", 1)[-1]
    view = read_lease(store)
    if view.live(time.time()) and take_over:
        view = _wait_for_expiry(store, view, environment, command)
    record = view.record
    expired = record is not None and not record.released
    if view.live(time.time()):
        assert record is not None
        raise EnvironmentBusy(
            f"environment {environment}: {record.describe()} is changing it now (lease expires "
            f"{_utc(record.expires_at)} unless renewed); {command} refused",
            hint="wait for it to finish (`drbootstrap status` works meanwhile); if that run is dead, "
                 "run again with --take-over: it waits for the lease to expire")
    if expired and not (take_over or take_expired):
        assert record is not None
        raise EnvironmentBusy(
            f"environment {environment}: the lease of {record.describe()} expired at {_utc(record.expires_at)} "
            f"without being released; {command} refused",
            hint="that run died or was cut off: run again with --take-over to resume from the journal")
    generation = (record.generation if record is not None else 0) + 1
    mine = me(command, generation, seconds)
    try:
        if view.etag is None:
            etag = store.put(LEASE_NAME, mine.to_bytes(), if_none_match=True)
        else:
            etag = store.put(LEASE_NAME, mine.to_bytes(), if_match=view.etag)
    except PreconditionFailed:
        now = read_lease(store)
        who = now.record.describe() if now.record is not None else "another process"
        raise EnvironmentBusy(f"environment {environment}: {who} took the lease first; {command} refused",
                              hint="wait for it to finish (`drbootstrap status` works meanwhile)") from None
    return Lease(store, mine, etag, seconds, record if expired else None)


def _wait_for_expiry(store: S3Objects, view: LeaseView, environment: str, command: str) -> LeaseView:
    """--take-over on a live lease: wait for its expiry; refuse if its holder renews it meanwhile."""
    assert view.record is not None
    while True:
        time.sleep(max(0.2, min(2.0, view.record.expires_at - time.time() + 0.2)))
        now = read_lease(store)
        if now.etag != view.etag:
            if now.live(time.time()) and now.record is not None:
                raise EnvironmentBusy(
                    f"environment {environment}: {now.record.describe()} is alive (it renewed its lease "
                    f"at {_utc(now.record.renewed_at)}); {command} --take-over refused",
                    hint="a live holder is never taken over: wait for it to finish")
            return now
        if not now.live(time.time()):
            return now


__all__ = ["Lease", "LeaseRecord", "LeaseView", "read_lease", "take_lease"]
