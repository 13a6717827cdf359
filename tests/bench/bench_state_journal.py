"""Benchmark: what a journal write costs with remote (s3) state against the local journal, on the code
path `up` takes (hold_state -> session.attach(journal) -> journal.start_step / finish_step), against a
real moto S3 server on loopback; and `up` on the local cloud with each state, back to back.

    python -m pytest tests/bench/bench_state_journal.py -s -k writes        (seconds; no root needed)
    python -m pytest tests/bench/bench_state_journal.py -s -k up            (root; two `up`s and `down`s)

The `up` pair is at the mercy of the machine's load; the time the s3 run spends in its remote
writes (summed over every thread, so an upper bound on what they add to the wall) is not.

DRB_BENCH_NODES=N changes the journal's size for the writes (default 5: examples/local.yaml).
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from drbootstrap.journal import Journal
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import Step
from drbootstrap.spec import parse_spec
from drbootstrap.state import hold_state
from tests.integration.state.conftest import ACCESS_KEY, KEY_VARIABLE, SECRET_KEY, s3_block
from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.support.moto_server import running_moto_server
from tests.support.prereq import REPO_ROOT

NODES = int(os.environ.get("DRB_BENCH_NODES", "5"))
WRITES = 200


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    import boto3

    os.environ.update({KEY_VARIABLE: secrets.token_hex(32), "DRB_TEST_S3_ACCESS": ACCESS_KEY,
                       "DRB_TEST_S3_SECRET": SECRET_KEY})
    with running_moto_server() as server:
        bucket = f"drb-bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", region_name="us-east-1", endpoint_url=server.url, aws_access_key_id=ACCESS_KEY,
                     aws_secret_access_key=SECRET_KEY).create_bucket(Bucket=bucket)
        yield server, bucket


def _spec(state_block: str):
    text = "environment: bench\ndomain: bench.internal\nprovider: {name: local}\n" + state_block
    return parse_spec(text)


def _time_writes(spec, state_dir: Path) -> list[float]:
    paths = EnvironmentPaths(state_dir, spec.environment)
    with hold_state(spec, paths, "up") as session:
        journal = Journal.at(paths)
        session.attach(journal)
        hosts = [f"web{n:02}" for n in range(NODES)]
        for host in hosts:
            journal.node(host, "web")
            for step in Step:
                journal.start_step(host, step)
                journal.finish_step(host, step, detail="x" * 60, facts={"address": "10.0.0.1"})
        seconds = []
        for index in range(WRITES):
            host, step = hosts[index % NODES], list(Step)[index % len(Step)]
            started = time.perf_counter()
            journal.finish_step(host, step, detail=f"write {index}", facts={"n": index})
            seconds.append(time.perf_counter() - started)
    return seconds


def _row(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    return (f"| {name} | {statistics.median(ordered) * 1000:.2f} ms | {ordered[int(len(ordered) * 0.95)] * 1000:.2f} ms"
            f" | {max(ordered) * 1000:.2f} ms |")


def test_writes(s3, tmp_path):
    server, bucket = s3
    local = _time_writes(_spec(""), tmp_path / "local")
    remote = _time_writes(_spec(s3_block(bucket, server.url, lease_seconds=60)), tmp_path / "s3")
    print(f"\n{NODES} nodes x {len(Step)} steps in the journal, {WRITES} writes each; load {os.getloadavg()[0]:.1f}")
    print("| state | median | p95 | max |\n| --- | --- | --- | --- |")
    print(_row("local", local))
    print(_row("s3 (moto, loopback)", remote))


UP_SPEC = (REPO_ROOT / "examples" / "local.yaml").read_text()


@E2E_GATE
def test_up(s3):
    """examples/local.yaml with each state, back to back; the s3 run times every remote write it makes
    (tests/bench/timed_state_cli.py), whose sum bounds what remote state can add to the wall time."""
    server, bucket = s3
    rows, timed = [], {}
    for label, block in (("local", ""), ("s3", s3_block(bucket, server.url, lease_seconds=60))):
        env = make_environment(UP_SPEC + block, f"bench{label}")
        try:
            load = os.getloadavg()[0]
            started = time.monotonic()
            command = [sys.executable, str(Path(__file__).with_name("timed_state_cli.py")), "up", str(env.spec_file),
                       "--json"]
            run = subprocess.run(command, env=env.env(), capture_output=True, text=True, timeout=900,
                                 stdin=subprocess.DEVNULL, check=False)
            wall = time.monotonic() - started
            assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
            result = json.loads(run.stdout.splitlines()[-1])
            timed[label] = json.loads(run.stderr.split("TIMED ", 1)[1].splitlines()[0])
            rows.append(f"| {label} | {wall:.1f} s | {result['wall_seconds']:.1f} s | "
                        f"{result['critical_path_seconds']:.1f} s | {load:.1f} |")
        finally:
            tear_down(env)
    print("\n| state | `up` process wall | report wall | critical path | load (1 min) |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    figures = timed["s3"]
    print(f"s3 run: {figures['writes']} remote journal writes, {figures['total']:.2f} s in all (every thread), "
          f"median {figures['median'] * 1000:.1f} ms, p95 {figures['p95'] * 1000:.1f} ms, "
          f"max {figures['max'] * 1000:.1f} ms")
