"""Launching through a fault-injecting proxy in front of moto: throttling and lost answers cost
retries, never a missing or a second node, and the proxy never sees more than the bucket allows."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest

from drbootstrap.providers.nodes import LaunchRequest
from drbootstrap.providers.pacing import Pacing
from drbootstrap.providers.throttle import ErrorKind, RetryPolicy, TokenBucket
from tests.integration.ec2.conftest import IMAGE, SIZE, ec2_provider
from tests.integration.ec2.test_ec2_environment import live_instances
from tests.support.faulty_proxy import (
    LOST_ANSWER,
    THROTTLE,
    UNAVAILABLE,
    FaultPlan,
    max_in_any_window,
    running_faulty_proxy,
)

pytestmark = pytest.mark.integration

# Loopback transit allowed between a thread taking its token and the proxy reading the request.
TRANSIT_TOLERANCE = 0.05
FAST_POLICY = RetryPolicy(max_attempts=12, base_delay=0.05, max_delay=0.5, max_elapsed=30.0)


def workers(environment: str, count: int) -> list[LaunchRequest]:
    return [LaunchRequest(environment, f"node{i:03d}", "worker", IMAGE, SIZE) for i in range(count)]


def launch_all(provider, requests: list[LaunchRequest], in_flight: int) -> dict:
    """What `up --until launch` does with its workers: `in_flight` threads, each with its own driver."""
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        return dict(zip((r.hostname for r in requests), pool.map(provider.launch, requests), strict=False))


def bare_provider(endpoint: str, tmp_path, environment: str, pacing: Pacing):
    """The EC2 provider without the environment's key pair and group (these tests launch bare instances)."""
    provider = ec2_provider(endpoint, tmp_path, environment)
    provider.pacing = pacing
    provider.launch_settings = lambda request: {}
    return provider


def test_fifty_nodes_launch_through_throttling_exactly_once_each_within_the_rate(fresh_moto, ec2_view, tmp_path):
    bucket = TokenBucket(per_second=25, burst=5)
    events = []
    pacing = Pacing(bucket=bucket, policy=FAST_POLICY, on_retry=events.append)
    plan = FaultPlan(rate=1 / 3, seed=20261122, kinds=(THROTTLE, UNAVAILABLE))
    with running_faulty_proxy(fresh_moto.url, plan) as proxy:
        provider = bare_provider(proxy.url, tmp_path, "throttled", pacing)
        launched = launch_all(provider, workers("throttled", 50), in_flight=10)
        arrivals, granted, launch_events = proxy.times(), bucket.granted, list(events)
        faults = proxy.count(fault=THROTTLE) + proxy.count(fault=UNAVAILABLE)
        run_instances = proxy.count("RunInstances")
        instances = live_instances(ec2_view, "throttled")
        destroyed = provider.destroy_environment().destroyed
        terminations = [a for a in proxy.arrivals if a.action == "TerminateInstances"]

    assert len(launched) == 50 and len(instances) == 50
    assert sorted(i["InstanceId"] for i in instances) == sorted(n.id for n in launched.values())

    assert faults > 10 and run_instances > 50  # the faults really happened and were retried
    assert len(launch_events) == faults  # every fault was reported to the progress hook
    assert all(e.kind is ErrorKind.THROTTLED for e in launch_events)
    assert len(arrivals) == granted  # every HTTP request took a token first
    assert len(destroyed) == 50 and live_instances(ec2_view, "throttled") == []  # teardown, throttled too
    assert sum(1 for a in terminations if a.fault is None) == 1  # one batch for all 50
    for window in (0.1, 0.25, 0.5, 1.0, 2.0):
        allowed = math.floor(bucket.allowance(window + TRANSIT_TOLERANCE))
        assert max_in_any_window(arrivals, window) <= allowed, f"more than {allowed} requests in {window}s"


def test_a_launch_whose_answer_was_lost_is_found_by_its_tags_not_launched_again(fresh_moto, ec2_view, tmp_path):
    events = []
    pacing = Pacing(bucket=TokenBucket(per_second=50, burst=10), policy=FAST_POLICY, on_retry=events.append)
    plan = FaultPlan(rate=0.5, seed=7, kinds=(LOST_ANSWER,), actions=frozenset({"RunInstances"}))
    with running_faulty_proxy(fresh_moto.url, plan) as proxy:
        launched = launch_all(bare_provider(proxy.url, tmp_path, "lossy", pacing), workers("lossy", 12), in_flight=4)
        lost = proxy.count("RunInstances", fault=LOST_ANSWER)
        run_instances = proxy.count("RunInstances")

    assert len(launched) == 12
    assert lost > 0 and run_instances == 12  # each lost create was looked up, never sent twice
    assert {e.kind for e in events} == {ErrorKind.TRANSIENT} and len(events) == lost
    assert len(live_instances(ec2_view, "lossy")) == 12
