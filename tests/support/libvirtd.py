"""The libvirt daemons the libvirt provider's integration tests need, on a machine without an init
system that starts them: virtlogd and libvirtd, started here when their sockets do not answer and
stopped (by the pids they wrote) when the tests that started them are done."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SOCKET = Path("/run/libvirt/libvirt-sock")
DAEMONS = (("virtlogd", Path("/run/libvirt/virtlogd-sock"), Path("/run/virtlogd.pid")),
           ("libvirtd", SOCKET, Path("/run/libvirtd.pid")))


def _answers() -> bool:
    done = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


@contextmanager
def libvirt_daemons() -> Iterator[None]:
    """libvirtd answering on qemu:///system for the duration; what was started here is stopped after."""
    started: list[int] = []
    Path("/var/lib/libvirt/dnsmasq").mkdir(parents=True, exist_ok=True)  # as .ci/install makes it
    try:
        if not _answers():
            for program, socket, pid_file in DAEMONS:
                if socket.exists() and program == "virtlogd":
                    continue
                subprocess.run([program, "-d"], check=True, timeout=30)
                deadline = time.monotonic() + 30
                while not pid_file.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
                started.append(int(pid_file.read_text().split()[0]))
            deadline = time.monotonic() + 30
            while not _answers():
                if time.monotonic() > deadline:
                    raise RuntimeError("libvirtd started but qemu:///system does not answer")
                time.sleep(0.5)
        yield
    finally:
        for pid in reversed(started):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
