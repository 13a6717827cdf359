"""For bench_state_journal.py: the real CLI, in this process, with every remote journal write timed;
one `TIMED {json}` line on stderr at the end (count, total, median, p95, max seconds)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from drbootstrap.state import remote

_SECONDS: list[float] = []
_LOCK = threading.Lock()
_write_bytes = remote.JournalReplica.write_bytes


def _timed(self: remote.JournalReplica, body: bytes) -> None:
    started = time.perf_counter()
    try:
        _write_bytes(self, body)
    finally:
        with _LOCK:
            _SECONDS.append(time.perf_counter() - started)


def main() -> None:
    from drbootstrap.cli.main import run

    remote.JournalReplica.write_bytes = _timed  # type: ignore[method-assign]
    code = run(sys.argv[1:])
    ordered = sorted(_SECONDS)
    figures = {"writes": len(ordered), "total": sum(ordered)}
    if ordered:
        figures |= {"median": ordered[len(ordered) // 2], "p95": ordered[int(len(ordered) * 0.95)], "max": ordered[-1]}
    print("TIMED " + json.dumps(figures), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as `up` does after Ctrl-C: worker threads need not be joined


if __name__ == "__main__":
    main()
