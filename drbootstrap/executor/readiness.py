"""The waits between nodes in one run: which steps each node has reached and how each node ended.

The runner reports every step a node reaches (done now, or done in the journal) and every node's
end; a worker's pipeline waits here for the master (before it starts, and for the Puppet CA before
its Puppet steps) and for the nodes it depends on through `after:`. A wait ends when what it waits
for happened, or when the node it waits on ended without it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from drbootstrap.plan import Step


class RunAborted(Exception):
    """The run is being torn down (Ctrl-C, a bug in the runner): stop waiting."""


class Readiness:
    """Thread-safe record of the steps reached and the nodes ended in this run."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._reached: dict[str, set[Step]] = {}
        self._ended: dict[str, bool] = {}  # hostname -> did what was asked of it (NodeOutcome.ok)
        self._aborted = False

    def reached(self, hostname: str, step: Step) -> None:
        with self._changed:
            self._reached.setdefault(hostname, set()).add(step)
            self._changed.notify_all()

    def ended(self, hostname: str, ok: bool) -> None:
        with self._changed:
            self._ended[hostname] = ok
            self._changed.notify_all()

    def abort(self) -> None:
        with self._changed:
            self._aborted = True
            self._changed.notify_all()

    def wait_for_step(self, hostname: str, step: Step) -> bool:
        """Wait until HOSTNAME reached STEP (True) or ended: True if it ended well without it (it
        stopped earlier, as `--until` asked), False if it failed or was blocked."""
        with self._changed:
            while True:
                self._raise_if_aborted()
                if step in self._reached.get(hostname, ()):
                    return True
                if hostname in self._ended:
                    return self._ended[hostname]
                self._changed.wait()

    def wait_for_ends(self, hostnames: Iterable[str]) -> list[str]:
        """Wait until every one of HOSTNAMES ended; those that failed or were blocked, sorted."""
        wanted = set(hostnames)
        with self._changed:
            while True:
                self._raise_if_aborted()
                if wanted <= set(self._ended):
                    return sorted(h for h in wanted if not self._ended[h])
                self._changed.wait()

    def _raise_if_aborted(self) -> None:
        if self._aborted:
            raise RunAborted("the run is stopping")
