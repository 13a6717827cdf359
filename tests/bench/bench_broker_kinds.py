"""Benchmark: ping over N agents spread over P agent processes, on ActiveMQ and on RabbitMQ.

Run: python -m pytest tests/bench/bench_broker_kinds.py -s   (root; DRB_BENCH_AGENTS=N, default
1000; DRB_BENCH_PROCESSES=P, default 8). Native protocol, the user's defaults (HMAC key, one STOMP
connection per agent, the client's expected-identity early stop). Per broker kind: time for the
fleet to connect, 5 ping rounds (the client's round from request to the last expected reply, and
the whole ping call), the broker's resident memory with the fleet connected (its process group),
and the agent processes' memory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from drbootstrap.messaging.client import ClientConfig, RpcClient
from tests.support.prereq import REPO_ROOT

pytestmark = pytest.mark.bench

AGENTS = int(os.environ.get("DRB_BENCH_AGENTS", "1000"))
PROCESSES = int(os.environ.get("DRB_BENCH_PROCESSES", "8"))


def group_rss_mb(pgid: int) -> float:
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except (OSError, ProcessLookupError):
            continue
        if "VmRSS:" in status:
            total += int(status.split("VmRSS:")[1].split()[0])
    return total / 1024


def start(kind: str, base: Path):
    if kind == "rabbitmq":
        from drbootstrap.rabbitmq import start_rabbitmq

        return start_rabbitmq(base)
    from drbootstrap.broker import start_broker

    return start_broker(base)


@pytest.mark.parametrize("kind", ["activemq", "rabbitmq"])
def test_bench_ping_over_a_fleet_of_agent_processes(kind):
    work = Path(tempfile.mkdtemp(prefix=f"drb-bench-{kind}-"))
    broker = start(kind, work / "broker")
    key = work / "psk"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    names = [f"n{i:05d}.bench.test" for i in range(AGENTS)]
    farms: list[subprocess.Popen] = []
    idle_rss = group_rss_mb(broker.pid)
    try:
        started = time.monotonic()
        for index in range(PROCESSES):
            farms.append(subprocess.Popen(
                [sys.executable, "-m", "tests.bench.agent_farm", broker.url, str(key), kind, *names[index::PROCESSES]],
                cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True))
        for farm in farms:
            assert farm.stdout is not None and farm.stdout.readline().strip() == "ready"
        connected = time.monotonic() - started
        print(f"\n{kind}: {AGENTS} agents in {PROCESSES} processes connected in {connected:.1f} s")
        config = ClientConfig(brokers=[broker.url], key_file=key, discovery_timeout=10.0, broker_kind=kind)
        with RpcClient(config) as client:
            for round_ in range(5):
                began = time.monotonic()
                result = client.ping(expect=names)
                wall = time.monotonic() - began
                last = max(result.latency_ms.values()) if result.latency_ms else float("nan")
                print(f"{kind} round {round_ + 1}: {len(result.responded)}/{AGENTS} answered, last expected "
                      f"reply at {last:.0f} ms, ping call {wall * 1000:.0f} ms")
        rss = group_rss_mb(broker.pid)
        agent_rss = [group_rss_mb(farm.pid) for farm in farms]
        print(f"{kind} broker RSS: {idle_rss:.0f} MB idle, {rss:.0f} MB with the fleet "
              f"({(rss - idle_rss) / AGENTS * 1000:.0f} MB per 1000 agents); agent processes "
              f"{sum(agent_rss) / len(agent_rss):.0f} MB each "
              f"({sum(agent_rss) / AGENTS * 1000:.0f} MB per 1000 agents)")
    finally:
        for farm in farms:
            if farm.poll() is None:
                os.killpg(farm.pid, signal.SIGTERM)
        for farm in farms:
            try:
                farm.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(farm.pid, signal.SIGKILL)
                farm.wait(10)
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
