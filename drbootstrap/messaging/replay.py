"""The replay cache: request ids a receiver has accepted, until they expire, across restarts.

An id is remembered only after the request was authenticated and authorised (so nobody else can
fill the cache), with an expiry that is finite and capped (the TTL check sees to that). When the
cache is full the entry that expires soonest is dropped: a full cache never locks callers out.
With a store file, accepted ids are appended to it and read back at start, so a request captured
before the agent restarted (or the node rebooted) is still refused afterwards.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import threading
import time
from pathlib import Path

from drbootstrap.errors import SecurityError

log = logging.getLogger("drbootstrap.security")

DEFAULT_CAPACITY = 100_000
MAX_ID_LENGTH = 128


class ReplayCache:
    """Ids seen and not yet expired; bounded; optionally persisted to `store` (one line per id)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, store: Path | None = None) -> None:
        self.capacity = capacity
        self.store = store
        self.evicted = 0  # ids dropped early because the cache was full
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._store_lines = 0
        if store is not None:
            self._load(store)

    def check_and_remember(self, message_id: str, expires_at: float, now: float | None = None) -> None:
        """Refuse an id seen before; remember it until `expires_at` (then the TTL check refuses it)."""
        now = time.time() if now is None else now
        if not math.isfinite(expires_at) or len(message_id) > MAX_ID_LENGTH or "\n" in message_id or " " in message_id:
            raise SecurityError("request id or expiry out of bounds")
        with self._lock:
            self._expire(now)
            if message_id in self._expiry:
                raise SecurityError(f"replayed message id {message_id}")
            while len(self._expiry) >= self.capacity:
                _, oldest = heapq.heappop(self._heap)
                if self._expiry.pop(oldest, None) is not None:
                    self.evicted += 1
            self._expiry[message_id] = expires_at
            heapq.heappush(self._heap, (expires_at, message_id))
            self._append(message_id, expires_at)

    def __len__(self) -> int:
        return len(self._expiry)

    def _expire(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            expires_at, old = heapq.heappop(self._heap)
            if self._expiry.get(old) == expires_at:
                del self._expiry[old]

    # -- the store --------------------------------------------------------------------------------

    def _load(self, store: Path) -> None:
        now = time.time()
        try:
            lines = store.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        except OSError as error:
            log.warning("replay store %s unreadable (%s); starting empty", store, error.strerror)
            lines = []
        for line in lines[-self.capacity :]:
            expiry_text, _, message_id = line.partition(" ")
            try:
                expires_at = float(expiry_text)
            except ValueError:
                continue
            if math.isfinite(expires_at) and expires_at >= now and message_id and len(message_id) <= MAX_ID_LENGTH:
                self._expiry[message_id] = expires_at
                self._heap.append((expires_at, message_id))
        heapq.heapify(self._heap)
        self._compact()

    def _append(self, message_id: str, expires_at: float) -> None:
        if self.store is None:
            return
        if self._store_lines > 2 * len(self._expiry) + 1000:
            self._compact()
            return
        try:
            with open(self.store, "a", encoding="utf-8") as handle:
                handle.write(f"{expires_at:.3f} {message_id}\n")
            self._store_lines += 1
        except OSError as error:
            log.warning("cannot append to the replay store %s: %s", self.store, error.strerror)

    def _compact(self) -> None:
        """Rewrite the store with the live ids only (atomically: a crash leaves old or new)."""
        assert self.store is not None
        temporary = self.store.with_name(self.store.name + ".tmp")
        try:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.writelines(f"{expiry:.3f} {mid}\n" for mid, expiry in self._expiry.items())
            os.replace(temporary, self.store)
            self._store_lines = len(self._expiry)
        except OSError as error:
            log.warning("cannot write the replay store %s: %s", self.store, error.strerror)
