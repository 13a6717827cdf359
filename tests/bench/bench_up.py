"""Benchmark: `drbootstrap up` on the local cloud: examples/local.yaml as written, and 10 and 50
workers; wall time against the critical path the report computes from the journal (the master to
its Puppet CA, then the longest `after:` chain of Puppet runs and checks; a worker's own boot when
that is longer), and the older estimate (master ready + slowest boot + one Puppet run).

    python -m pytest tests/bench/bench_up.py -s      (root; DRB_E2E_HOME: another project tree)
    python -m pytest tests/bench/bench_up.py -s -k "local_example or 10"

DRB_BENCH_MODE=server|apply (default server) picks the spec's Puppet mode.
"""

from __future__ import annotations

import json
import os
import statistics
import time

import pytest

from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.support.prereq import REPO_ROOT

pytestmark = [E2E_GATE]
MODE = os.environ.get("DRB_BENCH_MODE", "server")


def spec_for(workers: int) -> str:
    return f"""
environment: demo
domain: demo.internal
provider: {{name: local, network: 10.213.0.0/24, max_parallel: 16, rate: {{per_second: 50, burst: 100}}}}
master: {{hostname: controller, image: master, puppet: {{mode: {MODE}}}}}
nodes:
  - {{role: web, image: worker, count: {workers}, hostname_pattern: "web{{n:02}}"}}
"""


def critical_path(report: dict) -> dict[str, float]:
    """Seconds of the chain no amount of parallelism removes."""
    master = next(n for n in report["nodes"] if n["role"] == "master")
    steps = {s["step"]: s for s in master["steps"]}
    master_ready = steps["puppet_ca"]["finished_at"] - steps["launch"]["started_at"]
    boots, puppet = [], []
    for node in report["nodes"]:
        if node["role"] == "master":
            continue
        own = {s["step"]: s for s in node["steps"]}
        boots.append(own["boot"]["finished_at"] - own["launch"]["started_at"])
        puppet.append(own["puppet_run"]["seconds"])
    return {"master": master_ready, "slowest_boot": max(boots), "one_puppet_run": statistics.median(puppet),
            "min_puppet_run": min(puppet), "max_puppet_run": max(puppet)}


@pytest.mark.parametrize("workers", [10, 50])
def test_up_wall_time_against_the_critical_path(workers):
    env = make_environment(spec_for(workers), f"bench{workers}")
    try:
        started = time.monotonic()
        run = env.cli("up", str(env.spec_file), "--json", timeout=3600)
        wall = time.monotonic() - started
        assert run.returncode == 0, run.stdout[-3000:]
        report = env.report()
        path = critical_path(report)
        critical = path["master"] + path["slowest_boot"] + path["one_puppet_run"]
        print(f"\nreport: wall (first step to last) {report['recovery_span_seconds']:.1f} s, critical path "
              f"{report['critical_path_seconds']:.1f} s, ratio {report['wall_over_critical_path']:.2f}; load "
              f"{os.getloadavg()[0]:.1f}")
        print(
            f"\nup, {workers} workers, puppet {MODE}: wall {wall:.1f} s (process), "
            f"run {report['run']['seconds']:.1f} s;"
            f" critical path {critical:.1f} s = master {path['master']:.1f} + slowest boot "
            f"{path['slowest_boot']:.1f} + puppet run {path['one_puppet_run']:.1f} (median of the concurrent runs;"
            f" min {path['min_puppet_run']:.1f}, max {path['max_puppet_run']:.1f});"
            f" ratio {report['run']['seconds'] / critical:.2f};"
            f" against the fastest run: "
            f"{report['run']['seconds'] / (critical - path['one_puppet_run'] + path['min_puppet_run']):.2f}"
        )
        print(json.dumps(report["steps"], indent=None))
    finally:
        tear_down(env)


def test_up_local_example_as_written():
    env = make_environment((REPO_ROOT / "examples" / "local.yaml").read_text(), "benchlocal")
    try:
        load = os.getloadavg()[0]
        started = time.monotonic()
        run = env.cli("up", str(env.spec_file), "--json", timeout=3600)
        wall = time.monotonic() - started
        assert run.returncode == 0, run.stdout[-3000:]
        report = env.report()
        chain = " -> ".join(f"{link['node']} {link['steps'][0]}..{link['steps'][-1]} {link['seconds']:.1f} s"
                            for link in report["critical_path"]["chain"])
        print(f"\nup examples/local.yaml: wall {wall:.1f} s (process), run {report['run']['seconds']:.1f} s, "
              f"critical path {report['critical_path_seconds']:.1f} s ({chain}), ratio "
              f"{report['wall_over_critical_path']:.2f}; load {load:.1f} before, {os.getloadavg()[0]:.1f} after")
        print(json.dumps(report["steps"], indent=None))
    finally:
        tear_down(env)
