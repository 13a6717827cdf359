"""Benchmark: the master's time to ready per service and the workers' boot-to-named times, on the
local cloud, from the one scenario of tests/integration/images (master + two workers).

    python -m pytest tests/bench/bench_images.py -s        (root)
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.images.test_images_boot import scenario  # noqa: F401 - the shared fixture


def test_bench_master_services_and_worker_naming(scenario):
    started = time.monotonic()
    with scenario.client() as client:
        client.call("puppet", "runonce", {"force": True}, targets=["db01.img.internal"], timeout=600)
    scenario.times["db01 first Puppet run (CSR, autosign, first catalog)"] = time.monotonic() - started
    pid = Path(scenario.dirs("controller")["node_dir"], "puppetserver.pid").read_text().strip()
    rss = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
    print(f"\npuppetserver after the first catalog: {rss.split(':')[1].strip()} resident")
    print("| what | seconds after launch |\n| --- | --- |")
    for what, seconds in scenario.times.items():
        print(f"| {what} | {seconds:.1f} |")
