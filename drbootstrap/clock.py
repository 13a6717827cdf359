"""Time as drbootstrap reads it: one Clock seam (wall time, monotonic time, sleep) that tests replace."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock time (unix seconds): for journals, events and reports."""

    def monotonic(self) -> float:
        """For durations and deadlines."""

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
