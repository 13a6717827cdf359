"""A real moto EC2 server on loopback, started as a subprocess on a free port, for integration tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.server_process import free_port


def moto_server_command() -> list[str] | None:
    """`moto_server`, or the same entry point through this python; None when moto is not installed."""
    binary = shutil.which("moto_server")
    if binary:
        return [binary]
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "moto.server"]


@dataclass
class MotoServer:
    url: str
    port: int
    process: subprocess.Popen

    def reset(self) -> None:
        """Forget every resource moto holds, so each test starts from an empty account."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        urllib.request.urlopen(request, timeout=10).read()


@contextmanager
def running_moto_server(timeout: float = 30.0, host: str = "127.0.0.1") -> Iterator[MotoServer]:
    """Start moto_server bound to HOST (loopback, or an address of the project's own bridge) in its
    own process group; kill that group afterwards."""
    command = moto_server_command()
    if command is None:
        raise RuntimeError("moto is not installed (pip install 'moto[server,ec2]')")
    port = free_port(host)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    process = subprocess.Popen(
        [*command, "-H", host, "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    server = MotoServer(url=f"http://{host}:{port}", port=port, process=process)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited with status {process.returncode}")
            try:
                urllib.request.urlopen(f"{server.url}/moto-api/", timeout=2).read()
                break
            except OSError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on port {port} in {timeout}s") from error
                time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
