"""A real RabbitMQ cluster for integration tests: N nodes, each in its own network namespace on one
bridge, started the way a broker node starts them (drbootstrap.images.master_services broker
--cluster-seed), joined to the first node. Every process is ours and is stopped by its pid.

    with RabbitCluster(tmp_path, size=3) as cluster:
        cluster.urls            # stomp://ADDR:61613 of every node, the seed first
        cluster.kill(1)         # SIGKILL node 1's process group (a crash)
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from drbootstrap.paths import write_private_file
from drbootstrap.providers.local.netns import Plumbing, first_node_address
from tests.support.prereq import require, require_binary, require_root

STOMP_PORT = 61613


class RabbitCluster:
    def __init__(self, directory: Path, size: int = 3) -> None:
        self.directory = Path(directory)
        self.size = size
        self.plumbing = Plumbing(f"rc{secrets.token_hex(2)}")
        self.network = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
        first = first_node_address(self.network)
        self.addresses = [str(first + index) for index in range(size)]
        self.cookie_file = self.directory / "cookie"
        self.groups: dict[int, int] = {}  # node index -> the process group we started for it

    @property
    def urls(self) -> list[str]:
        return [f"stomp://{address}:{STOMP_PORT}" for address in self.addresses]

    def __enter__(self) -> RabbitCluster:
        require_root()
        require_binary("epmd")
        from drbootstrap.rabbitmq import RABBITMQ_SERVER

        require(RABBITMQ_SERVER.exists(), "RabbitMQ (Debian `rabbitmq-server`)")
        try:
            self.plumbing.ensure_bridge(self.network)
            for index, address in enumerate(self.addresses):
                self.plumbing.create_node_network(index, self.network, [address])
            write_private_file(self.cookie_file, secrets.token_hex(20))
            for index in range(self.size):
                self.start(index)
        except BaseException:
            self.__exit__()
            raise
        return self

    def start(self, index: int) -> None:
        """Start node INDEX (again) and wait until it serves STOMP; the seed must be up for others."""
        command = ["ip", "netns", "exec", self.plumbing.netns_name(index), sys.executable, "-m",
                   "drbootstrap.images.master_services", "broker", "--kind", "rabbitmq",
                   "--base-dir", str(self.directory / f"node{index}"), "--host", self.addresses[index],
                   "--port", str(STOMP_PORT), "--cluster-seed", self.addresses[0],
                   "--cookie-file", str(self.cookie_file)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
        if done.returncode != 0:
            raise AssertionError(f"broker node {index} did not start: {done.stderr.strip()[-800:]}")
        self.groups[index] = os.getpgid(int(done.stdout.split()[-1]))

    def kill(self, index: int) -> None:
        """Node INDEX crashes: SIGKILL to its process group (its shell, Erlang VM and epmd)."""
        group = self.groups.pop(index)
        os.killpg(group, signal.SIGKILL)
        self._wait_gone(group, 10)

    def log(self, index: int) -> str:
        path = self.directory / f"node{index}" / "rabbitmq.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait_gone(self, group: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    def __exit__(self, *exc: object) -> None:
        for group in list(self.groups.values()):
            try:
                os.killpg(group, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for group in list(self.groups.values()):
            if not self._wait_gone(group, 20):
                try:
                    os.killpg(group, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._wait_gone(group, 5)
        self.groups.clear()
        for index in range(self.size):
            self.plumbing.delete_node_network(index)
        self.plumbing.remove_everything()
