"""Benchmark: launch 500 nodes against a real moto server through the cloud layer with the default
EC2 limits, parallel against sequential, with the request rate measured at a proxy in front of moto.

Run: python -m pytest tests/bench/bench_ec2_launch.py -s
Two settings: moto as it is (loopback, a few ms per call, CPU-bound on this machine) and moto
behind the proxy adding a fixed latency per request, as a remote cloud's API does.
"""

from __future__ import annotations

import math
import os
import time

import pytest

from drbootstrap.providers.cloud import (
    DEFAULT_MAX_PARALLEL,
    LaunchRequest,
    Pacing,
    RateSettings,
    bucket_for,
    launch_many,
)
from tests.integration.ec2.conftest import IMAGE, SIZE, driver_factory, ec2_settings
from tests.support.faulty_proxy import (
    FaultPlan,
    max_in_any_window,
    running_faulty_proxy,
)
from tests.support.moto_server import moto_server_command, running_moto_server
from tests.support.prereq import require

pytestmark = pytest.mark.bench

NODES = int(os.environ.get("DRB_BENCH_NODES", "500"))
LATENCY = float(os.environ.get("DRB_BENCH_LATENCY", "0.25"))


def requests_for(environment: str) -> list[LaunchRequest]:
    return [LaunchRequest(environment, f"node{i:04d}", "worker", IMAGE, SIZE) for i in range(NODES)]


def timed_launch(url: str, environment: str, max_parallel: int, rate: RateSettings | None = None) -> tuple[float, int]:
    bucket = bucket_for(ec2_settings(url, rate=rate))  # default: EC2's 1000 burst, 2 per second
    started = time.monotonic()
    outcome = launch_many(driver_factory(url), requests_for(environment), max_parallel=max_parallel,
                          pacing=Pacing(bucket=bucket))
    elapsed = time.monotonic() - started
    outcome.raise_for_failures()
    assert len(outcome.nodes) == NODES
    return elapsed, bucket.granted


def rate_report(arrivals: list[float], per_second: float, burst: float) -> str:
    worst = []
    for window in (0.5, 1.0, 10.0):
        seen, allowed = max_in_any_window(arrivals, window), math.floor(burst + per_second * window)
        assert seen <= allowed + 1  # one request of loopback transit slack
        worst.append(f"{seen}/{allowed} in {window:g}s")
    return ", ".join(worst)


@pytest.mark.parametrize("latency", [0.0, LATENCY], ids=["moto-direct", f"latency-{LATENCY:g}s"])
def test_bench_parallel_launch_of_500_nodes_against_sequential(latency):
    require(moto_server_command() is not None, "moto server")
    rate = ec2_settings("http://x")
    bucket = bucket_for(rate)
    with running_moto_server() as moto:
        # moto loads its image and instance-type catalogues on first use (seconds): not ours to time.
        launch_many(driver_factory(moto.url), requests_for("warm-up")[:5], max_parallel=1)
        rows = {}
        for label, parallel in (("sequential", 1), ("parallel", DEFAULT_MAX_PARALLEL)):
            moto.reset()
            with running_faulty_proxy(moto.url, FaultPlan(rate=0.0, latency=latency)) as proxy:
                elapsed, requests = timed_launch(proxy.url, f"bench-{label}", parallel)
                rows[label] = (elapsed, requests, rate_report(proxy.times(), bucket.per_second, bucket.burst))
    bound = max(0.0, (rows["parallel"][1] - bucket.burst) / bucket.per_second)
    speedup = rows["sequential"][0] / rows["parallel"][0]
    print(f"\n## ec2 launch: {NODES} nodes, added latency {latency:g}s per request, "
          f"bucket {bucket.burst:g} burst / {bucket.per_second:g} per s, max_parallel {DEFAULT_MAX_PARALLEL}")
    for label, (elapsed, requests, report) in rows.items():
        print(f"{label:>10}: {elapsed:7.2f}s wall, {requests} requests, worst windows {report}")
    print(f"   speedup: {speedup:.1f}x; rate-limit bound for {rows['parallel'][1]} requests: {bound:.1f}s")
    if latency >= 0.2:  # a remote cloud's latency to hide: the target applies
        assert speedup >= 10


def test_bench_a_tight_rate_sets_the_pace_and_is_never_exceeded():
    """The spec's rate, not the threads, is the limit: wall time close to the bucket's bound."""
    require(moto_server_command() is not None, "moto server")
    rate = RateSettings(per_second=20, burst=50)
    with running_moto_server() as moto:
        launch_many(driver_factory(moto.url), requests_for("warm-up")[:5], max_parallel=1)
        moto.reset()
        with running_faulty_proxy(moto.url, FaultPlan(rate=0.0, latency=LATENCY)) as proxy:
            elapsed, requests = timed_launch(proxy.url, "bench-rate", DEFAULT_MAX_PARALLEL, rate)
            report = rate_report(proxy.times(), rate.per_second, rate.burst)
    bound = (requests - rate.burst) / rate.per_second
    print(f"\n## ec2 launch under a tight rate: {NODES} nodes, bucket {rate.burst:g} burst / "
          f"{rate.per_second:g} per s, latency {LATENCY:g}s, max_parallel {DEFAULT_MAX_PARALLEL}")
    print(f"  parallel: {elapsed:7.2f}s wall for {requests} requests; rate-limit bound {bound:.2f}s; "
          f"worst windows {report}")
    assert elapsed >= bound


UP_NODES = int(os.environ.get("DRB_BENCH_UP_NODES", "100"))


def test_bench_up_until_launch_against_the_layer_alone(tmp_path, monkeypatch):
    """`up --until launch` (journal, user-data, key pair, group, address, volumes, per-node lookups)
    against launch_many for the same node count, both behind the latency proxy, same bucket."""
    from drbootstrap.executor import UpOptions, down, up
    from drbootstrap.journal import Step
    from drbootstrap.spec import load_spec
    from tests.integration.ec2.conftest import ACCESS_KEY, SECRET_KEY
    from tests.integration.ec2.test_up_ec2 import write_spec

    require(moto_server_command() is not None, "moto server")
    monkeypatch.setenv("DRB_TEST_EC2_KEY", ACCESS_KEY)
    monkeypatch.setenv("DRB_TEST_EC2_SECRET", SECRET_KEY)
    per_second, burst = 100, 200
    with running_moto_server() as moto:
        launch_many(driver_factory(moto.url), requests_for("warm-up")[:5], max_parallel=1)
        moto.reset()
        with running_faulty_proxy(moto.url, FaultPlan(rate=0.0, latency=LATENCY)) as proxy:
            started = time.monotonic()
            launch_many(driver_factory(proxy.url), [LaunchRequest("layer", f"node{i:04d}", "worker", IMAGE, SIZE)
                                                    for i in range(UP_NODES)], max_parallel=20,
                        pacing=Pacing(bucket=bucket_for(ec2_settings(proxy.url, rate=RateSettings(per_second, burst)))))
            layer = time.monotonic() - started
            layer_requests = len(proxy.arrivals)
            import boto3

            view = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto.url,
                                aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
            source = view.create_volume(Size=8, AvailabilityZone="us-east-1a")["VolumeId"]
            snapshot = view.create_snapshot(VolumeId=source)["SnapshotId"]
            spec = load_spec(write_spec(tmp_path, proxy.url, snapshot, web_count=UP_NODES - 2, rate=per_second,
                                        burst=burst))
            text = spec.source_path.read_text().replace("max_parallel: 10", "max_parallel: 20")
            spec.source_path.write_text(text)
            spec = load_spec(spec.source_path)
            before = len(proxy.arrivals)
            started = time.monotonic()
            events = []
            result, _ = up(spec, tmp_path / "state", options=UpOptions(until=Step.LAUNCH), emit=events.append)
            through_up = time.monotonic() - started
            up_requests = len(proxy.arrivals) - before
            down(spec, tmp_path / "state")
    assert not result.failed and len(result.outcomes) == UP_NODES
    print(f"\n## ec2 launch through up: {UP_NODES} nodes, latency {LATENCY:g}s, bucket {burst} / {per_second} per s, "
          f"max_parallel 20")
    print(f"  launch_many: {layer:6.2f}s wall, {layer_requests} requests")
    print(f"  up --until launch: {through_up:6.2f}s wall, {up_requests} requests "
          f"(ratio {through_up / layer:.2f})")
    finished = {e.node: e.elapsed for e in events if e.node and not e.step and e.state == "done"}
    print(f"  critical path: master provisioned at {finished['controller']:.2f}s (key pair, group, instance, "
          f"address), db01 at {finished['db01']:.2f}s (+2 volumes), last web at {max(finished.values()):.2f}s")
