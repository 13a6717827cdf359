"""Small helpers shared by the real-server fixtures: free ports, waiting, stopping by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on HOST right now (bind port 0, then check UDP)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
            return port
    raise RuntimeError(f"no free TCP+UDP port on {host}")


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, what: str, log: Path, limit: float = 30.0) -> None:
    """Poll READY until true; fail early with the log's tail if PROCESS died first."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001, S110 - not ready yet, whatever the reason
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {limit:g} s:\n{_tail(log)}")


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate a child we started (its own process group), then kill it if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
