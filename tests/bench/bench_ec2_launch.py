"""Benchmark: `drbootstrap up --until launch` (the real CLI, in a subprocess) launching 500 nodes
against a real moto server behind a proxy that adds a remote API's latency to every request, with
up's own defaults for EC2 (its family's rate and launches in flight), against the same command with
one launch in flight; the request rate is measured at the proxy.

Run: python -m pytest tests/bench/bench_ec2_launch.py -s
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drbootstrap.providers.ec2 import EC2Provider
from tests.integration.ec2.conftest import ACCESS_KEY, SECRET_KEY
from tests.support.faulty_proxy import FaultPlan, max_in_any_window, running_faulty_proxy
from tests.support.moto_server import moto_server_command, running_moto_server
from tests.support.prereq import require

pytestmark = pytest.mark.bench

NODES = int(os.environ.get("DRB_BENCH_NODES", "500"))
LATENCY = float(os.environ.get("DRB_BENCH_LATENCY", "0.25"))
CLI = Path(sys.executable).with_name("drbootstrap")
PROJECT = Path(__file__).resolve().parents[2]

# No rate and no max_parallel: `up` takes the EC2 family's defaults, as for a user's spec.
SPEC = """environment: @ENV@
domain: @ENV@.internal
provider:
  name: ec2
  region: us-east-1
  zone: us-east-1a
  endpoint: @ENDPOINT@
  credentials:
    access_key_id: ${env:DRB_TEST_EC2_KEY}
    secret_access_key: ${env:DRB_TEST_EC2_SECRET}
  images: {master: ami-12c6146b, worker: ami-12c6146b}
  sizes: {small: t2.micro}
  extra:
    driver_class: "tests.support.moto_ec2:MotoEC2NodeDriver"
    operator_cidr: 192.0.2.10/32
@MAX_PARALLEL@
master:
  hostname: controller
nodes:
  - role: web
    count: @WORKERS@
    hostname_pattern: "web{n:04}"
"""


def run_up(tmp_path: Path, endpoint: str, environment: str, max_parallel: int | None) -> tuple[float, str]:
    spec = tmp_path / f"{environment}.yaml"
    spec.write_text(SPEC.replace("@ENV@", environment).replace("@ENDPOINT@", endpoint)
                    .replace("@WORKERS@", str(NODES - 1))
                    .replace("@MAX_PARALLEL@", f"  max_parallel: {max_parallel}" if max_parallel else ""))
    env = {**os.environ, "DRB_TEST_EC2_KEY": ACCESS_KEY, "DRB_TEST_EC2_SECRET": SECRET_KEY,
           "PYTHONPATH": str(PROJECT)}  # the spec's test driver (extra driver_class)
    started = time.monotonic()
    done = subprocess.run([str(CLI), "up", str(spec), "--state-dir", str(tmp_path / environment), "--until",
                           "launch", "--plain"], env=env, cwd=PROJECT, capture_output=True, text=True, timeout=3600)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"all {NODES} nodes through launch" in done.stdout
    return elapsed, done.stdout


def rate_report(arrivals: list[float], per_second: float, burst: float) -> str:
    worst = []
    for window in (0.5, 1.0, 10.0, 60.0):
        seen, allowed = max_in_any_window(arrivals, window), math.floor(burst + per_second * window)
        assert seen <= allowed + 1, f"{seen} requests in {window}s, the bucket allows {allowed}"  # +1: transit
        worst.append(f"{seen}/{allowed} in {window:g}s")
    return ", ".join(worst)


def test_bench_up_until_launch_of_500_nodes_with_ups_defaults_against_one_launch_in_flight(tmp_path):
    require(moto_server_command() is not None, "moto server")
    rate = EC2Provider.default_rate
    rows = {}
    with running_moto_server() as moto:
        # moto loads its image and instance-type catalogues on first use (seconds): not ours to time.
        import boto3

        boto3.client("ec2", region_name="us-east-1", endpoint_url=moto.url, aws_access_key_id=ACCESS_KEY,
                     aws_secret_access_key=SECRET_KEY).run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
        for label, max_parallel in (("parallel (defaults)", None), ("one launch in flight", 1)):
            moto.reset()
            with running_faulty_proxy(moto.url, FaultPlan(rate=0.0, latency=LATENCY)) as proxy:
                elapsed, output = run_up(tmp_path, proxy.url, f"bench{len(rows)}", max_parallel)
                arrivals = proxy.times()
                rows[label] = (elapsed, len(arrivals), proxy.count("RunInstances"),
                               rate_report(arrivals, rate.per_second, rate.burst))
    print(f"\n## up --until launch: {NODES} nodes, added latency {LATENCY:g}s per request, up's EC2 defaults: "
          f"bucket {rate.burst:g} burst / {rate.per_second:g} per s, {EC2Provider.default_max_parallel} in flight")
    for label, (elapsed, requests, launches, report) in rows.items():
        print(f"{label:>22}: {elapsed:7.2f}s wall, {requests} requests ({launches} RunInstances), worst {report}")
    speedup = rows["one launch in flight"][0] / rows["parallel (defaults)"][0]
    print(f"{'speedup':>22}: {speedup:.1f}x")
    assert speedup >= 10
