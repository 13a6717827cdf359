"""Where the agent's actions run: a few daemon worker threads behind a bounded queue.

The thread that reads the broker only admits requests and hands them over, so an action that
wedges (a hung Puppet, a third-party agent's bug) never stops the agent answering others, and
daemon threads never stop the process exiting on SIGTERM. A full queue is a clean "busy" refusal.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger("drbootstrap.agent")

DEFAULT_WORKERS = 4
DEFAULT_PENDING = 32


class ActionRunner:
    """submit(job) -> False when `pending` jobs already wait; jobs run on `workers` daemon threads."""

    def __init__(self, name: str, *, workers: int = DEFAULT_WORKERS, pending: int = DEFAULT_PENDING) -> None:
        self.name = name
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=max(1, pending))
        self._workers = max(1, workers)
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self._idle = threading.Condition()
        self._unfinished = 0  # submitted and not yet done

    def submit(self, job: Callable[[], None]) -> bool:
        with self._idle:
            if self._stopped:
                return False
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                return False
            self._unfinished += 1
            # Threads start as work needs them (200 agents in one process must not mean 800 threads).
            if self._unfinished > len(self._threads) and len(self._threads) < self._workers:
                thread = threading.Thread(target=self._work, name=f"act-{self.name}-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted job has finished (tests and benchmarks); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def stop(self) -> None:
        """Drop waiting jobs and let idle workers end; a busy one ends with the process."""
        with self._idle:
            self._stopped = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            with self._idle:
                self._unfinished -= 1
                self._idle.notify_all()
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except Exception as error:  # noqa: BLE001 - a job's bug must not kill the worker
                log.warning("%s: an action job failed: %s: %s", self.name, type(error).__name__, error)
            finally:
                with self._idle:
                    self._unfinished -= 1
                    self._idle.notify_all()
