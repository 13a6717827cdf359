"""Benchmark: `drbootstrap up examples/libvirt.yaml` on real virtual machines beside `up
examples/local.yaml` on the local cloud, in one session: wall time, each VM's boot (launch to its
agent answering: the boot step's end, when cloud-init finished and the agent came up), the master
to its Puppet CA ready.

    python -m pytest tests/bench/bench_libvirt.py -s      (root; images built by `images build`;
                                                          the domain type is the provider's auto)
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.integration.libvirt.conftest import libvirtd  # noqa: F401 - the fixture
from tests.integration.libvirt.conftest import make_environment as make_virt_environment
from tests.integration.libvirt.conftest import tear_down as tear_down_virt
from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.support.prereq import REPO_ROOT

pytestmark = [E2E_GATE]


def figures(report: dict) -> dict[str, float]:
    """Master to CA ready, and each worker's launch to agent answering, from the run's report."""
    out: dict[str, float] = {}
    for node in report["nodes"]:
        steps = {s["step"]: s for s in node["steps"]}
        if node["role"] == "master":
            out["master_to_ca"] = steps["puppet_ca"]["finished_at"] - steps["launch"]["started_at"]
        else:
            out[f"boot_{node['hostname']}"] = steps["boot"]["finished_at"] - steps["launch"]["started_at"]
    return out


def timed_up(env) -> tuple[float, dict]:  # either kind of environment
    started = time.monotonic()
    run = env.cli("up", str(env.spec_file), "--json", timeout=7200)
    wall = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return wall, json.loads(env.paths.report_json.read_text())


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[float, dict]]:
    return {}


def test_local_example(results):
    env = make_environment((REPO_ROOT / "examples" / "local.yaml").read_text(), "benchlocal")
    try:
        results["local"] = timed_up(env)
    finally:
        tear_down(env)
    print(f"\nlocal: up {results['local'][0]:.1f} s; {figures(results['local'][1])}; load {os.getloadavg()[0]:.1f}")


def test_libvirt_example(libvirtd, results):
    env = make_virt_environment((REPO_ROOT / "examples" / "libvirt.yaml").read_text(), "benchvirt")
    try:
        results["libvirt"] = timed_up(env)
    finally:
        tear_down_virt(env)
    print(f"\nlibvirt: up {results['libvirt'][0]:.1f} s; {figures(results['libvirt'][1])}; "
          f"load {os.getloadavg()[0]:.1f}")
