"""Local cloud at scale: 50 nodes created in parallel must all run within 15 s; destroying them, 10 s.

Run (root): python -m pytest tests/bench/bench_local_cloud.py -s
DRB_BENCH_NODES=N changes the 50, DRB_BENCH_THREADS=N the 16 launch threads.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from drbootstrap.providers.local import LocalNodeDriver, runtime
from tests.integration.local_cloud.support import IMAGES, free_network, leftovers
from tests.support.prereq import require_binary, require_root

NODES = int(os.environ.get("DRB_BENCH_NODES", "50"))
THREADS = int(os.environ.get("DRB_BENCH_THREADS", "16"))
RUNNING_BUDGET_SECONDS = 15.0
DESTROY_BUDGET_SECONDS = 10.0

pytestmark = pytest.mark.bench


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_fifty_nodes_run_within_15_s_and_are_destroyed_within_10_s(tmp_path):
    require_root()
    require_binary("ip", "unshare", "nsenter", "setsid")
    driver = LocalNodeDriver(state_dir=tmp_path / "state", network=free_network(), images_dir=IMAGES)
    try:
        memory_before = mem_available_kib()
        create_seconds: list[float] = []

        def create(i: int):
            started = time.perf_counter()
            node = driver.create_node(f"bench{i:02}", "small", "basic", ex_metadata={"bench": "1"})
            create_seconds.append(time.perf_counter() - started)
            return node

        started = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            nodes = list(pool.map(create, range(NODES)))
        launched = time.perf_counter() - started
        driver.ex_wait_until_booted(nodes, wait_period=0.05)
        running = time.perf_counter() - started

        node_pids = [pid for node in nodes for pid in runtime.pids_in_netns(
            os.stat(f"/run/netns/{node.extra['namespace']}").st_ino)]
        node_rss = sum(rss_kib(pid) for pid in node_pids)
        memory_used = memory_before - mem_available_kib()

        started = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(driver.destroy_node, nodes))
        destroyed = time.perf_counter() - started

        print(f"\nlocal cloud, {NODES} nodes, {THREADS} threads, load {os.getloadavg()[0]:.1f}:")
        print(f"  create_node calls returned after {launched:.2f} s; all RUNNING after {running:.2f} s "
              f"({running / NODES * 1000:.0f} ms per node)")
        print(f"  create_node latency: median {statistics.median(create_seconds) * 1000:.0f} ms, "
              f"max {max(create_seconds) * 1000:.0f} ms")
        print(f"  memory: MemAvailable dropped {memory_used / 1024:.1f} MiB "
              f"({memory_used / NODES:.0f} KiB per node); node processes {len(node_pids)}, "
              f"RSS {node_rss / 1024:.1f} MiB")
        print(f"  destroy of all {NODES}: {destroyed:.2f} s")
        assert running < RUNNING_BUDGET_SECONDS
        assert destroyed < DESTROY_BUDGET_SECONDS
    finally:
        driver.ex_cleanup()
        assert leftovers(driver) == []
