"""Test-only: the local cloud's driver behind a flaky API, as a cloud under strain answers.

Used through the spec's `provider: {extra: {driver_class: "tests.support.flaky_local_cloud:FlakyLocalNodeDriver"}}`.
DRB_TEST_CLOUD_FAULTS=N makes the first calls of each process fail, N in all: list_nodes and
create_node calls alternately fail and succeed, the failures alternately an HTTP 500 and a
connection reset. The first create_node that fails does so after the node was made (its answer
lost on the way back): the case in which a blind retry would make the node twice.
Each injected fault is a line in DRB_TEST_CLOUD_FAULT_LOG, when set.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from libcloud.common.exceptions import BaseHTTPError

from drbootstrap.providers.local.driver import LocalNodeDriver

_lock = threading.Lock()
_calls = 0
_injected = 0
_created_then_lost = False


def _next_fault(operation: str) -> str | None:
    """'500', 'reset' or 'lost' (made, then the answer lost) for this call; None to let it through."""
    global _calls, _injected, _created_then_lost
    budget = int(os.environ.get("DRB_TEST_CLOUD_FAULTS", "0"))
    with _lock:
        _calls += 1
        if _injected >= budget or _calls % 2 == 0:
            return None
        _injected += 1
        if operation == "create_node" and not _created_then_lost:
            _created_then_lost = True
            fault = "lost"
        else:
            fault = "500" if _injected % 2 else "reset"
    log = os.environ.get("DRB_TEST_CLOUD_FAULT_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(f"{operation} {fault}\n")
    return fault


def _raise(fault: str) -> None:
    if fault == "500":
        raise BaseHTTPError(500, "Internal Server Error")
    raise ConnectionResetError(104, "Connection reset by peer")


class FlakyLocalNodeDriver(LocalNodeDriver):
    """LocalNodeDriver whose list_nodes and create_node fail now and then (see the module)."""

    def list_nodes(self, *args: Any, **kwargs: Any) -> Any:
        fault = _next_fault("list_nodes")
        if fault:
            _raise(fault)
        return super().list_nodes(*args, **kwargs)

    def create_node(self, *args: Any, **kwargs: Any) -> Any:
        fault = _next_fault("create_node")
        if fault == "lost":
            super().create_node(*args, **kwargs)
            _raise("reset")
        if fault:
            _raise(fault)
        return super().create_node(*args, **kwargs)
