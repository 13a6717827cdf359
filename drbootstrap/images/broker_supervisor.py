"""A broker node's RabbitMQ, supervised in the foreground as the master's boot.sh supervises its
services (systemd's Restart=on-failure): started, and started again whenever it ends (it rejoins its
cluster), after a backoff of 1 s doubling to 60 s, back to 1 s once it has run 5 min; one line per
restart. A pid file keeps a second boot from starting a second supervisor; SIGTERM stops RabbitMQ,
then the supervisor.

    python3 -m drbootstrap.images.master_services broker --kind rabbitmq ... --supervise PID_FILE
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Protocol

from drbootstrap.errors import DrbError

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
HEALTHY_AFTER = 300.0  # a node that ran this long restarts after FIRST_BACKOFF again


class Supervised(Protocol):
    """A started service: wait() blocks until it ends (its exit status); stop() ends it and its children."""

    @property
    def node_pid(self) -> int | None: ...

    def wait(self) -> int: ...

    def stop(self) -> None: ...


class Stopped(Exception):  # a signal to unwind, not an error
    """SIGTERM arrived: stop the service, then the supervisor."""


@dataclass
class Supervisor:
    """Runs `start` again whenever what it started ends; `log` takes one line per event."""

    name: str
    start: Callable[[], Supervised]
    log: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    current: Supervised | None = field(default=None, init=False)
    restarts: int = field(default=0, init=False)

    def run(self, *, rounds: int | None = None) -> None:
        """Supervise until stopped (or for ROUNDS starts: for tests)."""
        backoff = FIRST_BACKOFF
        while rounds is None or rounds > 0:
            rounds = None if rounds is None else rounds - 1
            started = self.clock()
            why = self._run_once()
            if self.clock() - started >= HEALTHY_AFTER:
                backoff = FIRST_BACKOFF
            self.restarts += 1
            self.log(f"{self.name} {why}; restarting it in {backoff:.0f} s")
            self.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _run_once(self) -> str:
        """Start the service and wait for it to end; why it is not running (one line)."""
        try:
            self.current = self.start()
        except DrbError as error:
            return f"did not start: {error.message}"
        except OSError as error:  # its files (a full disk): tried again, as any failed start
            return f"did not start: {error}"
        pid = self.current.node_pid
        self.log(f"{self.name} running (pid {pid})")
        status = self.current.wait()
        self.current.stop()  # whatever is left of its process group (epmd)
        self.current = None
        return f"ended (pid {pid}, exit status {status})"

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


def supervise(supervisor: Supervisor, pid_file: Path) -> int:
    """Run SUPERVISOR in this process unless PID_FILE names a live one; stop on SIGTERM."""
    other = running_pid(pid_file)
    if other is not None and other != os.getpid():
        supervisor.log(f"{supervisor.name} is already supervised (pid {other}, {pid_file})")
        return 0
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise Stopped

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        supervisor.run()
    except Stopped:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop at a time
        supervisor.stop()
        supervisor.log(f"{supervisor.name} stopped (SIGTERM)")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if running_pid(pid_file) == os.getpid():
            pid_file.unlink(missing_ok=True)
    return 0


def running_pid(pid_file: Path) -> int | None:
    """The pid in PID_FILE when that process still runs, else None."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    from drbootstrap.rabbitmq_membership import alive

    return pid if alive(pid) else None


def stamped(line: str) -> str:
    """LINE after the UTC time, as the master's supervisor.log has it."""
    return f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}"
