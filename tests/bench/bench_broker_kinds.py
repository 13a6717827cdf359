"""Benchmark: ping over N agents spread over P agent processes, on ActiveMQ and on RabbitMQ.

Run: python -m pytest tests/bench/bench_broker_kinds.py -s   (root; DRB_BENCH_AGENTS=N, default
1000; DRB_BENCH_PROCESSES=P, default 8). Native protocol, the user's defaults (HMAC key, one STOMP
connection per agent, the client's expected-identity early stop). Per broker kind: time for the
fleet to connect, 5 ping rounds (the client's round from request to the last expected reply, and
the whole ping call), the broker's resident memory with the fleet connected (its process group),
and the agent processes' memory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from drbootstrap.messaging.client import ClientConfig, RpcClient
from tests.support.agent_farm import farm_command, start_farms, stop_farms

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
        farms = start_farms([[*farm_command(), broker.url, str(key), kind, "native", *names[index::PROCESSES]]
                             for index in range(PROCESSES)])
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
        stop_farms(farms)
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_bench_mco_ping_and_drbootstrap_ping_in_compat_mode_on_rabbitmq():
    """The same fleet speaking MCollective 2.12 on RabbitMQ: Debian's `mco ping` (connector =
    rabbitmq) beside `drbootstrap ping --protocol mcollective --broker-kind rabbitmq --expect`."""
    from tests.support.mcollective import new_psk, run_mco, write_mcollective_config

    work = Path(tempfile.mkdtemp(prefix="drb-bench-mco-rabbit-"))
    broker = start("rabbitmq", work / "broker")
    psk = new_psk()
    key = work / "psk"
    key.write_text(psk)
    key.chmod(0o600)
    names = [f"m{i:05d}.bench.test" for i in range(AGENTS)]
    (work / "expect").write_text("\n".join(names) + "\n")
    client_cfg = write_mcollective_config(work / "client.cfg", identity="mco-bench", broker_host=broker.host,
                                          broker_port=broker.port, psk=psk, connector="rabbitmq", loglevel="info")
    farms: list[subprocess.Popen] = []
    try:
        farms = start_farms([[*farm_command(), broker.url, str(key), "rabbitmq", "mcollective",
                              *names[index::PROCESSES]] for index in range(PROCESSES)])
        drb = [str(Path(sys.executable).parent / "drbootstrap"), "ping", "--protocol", "mcollective",
               "--broker-kind", "rabbitmq", "--broker", broker.url, "--key-file", str(key),
               "--expect", f"@{work / 'expect'}", "--discovery-timeout", "10", "--json"]
        for round_ in range(3):
            began = time.monotonic()
            ours = subprocess.run(drb, capture_output=True, text=True, timeout=120, check=False)
            ours_wall = time.monotonic() - began
            answered = len(json.loads(ours.stdout)["replies"]) if ours.returncode == 0 else ours.returncode
            began = time.monotonic()
            theirs = run_mco(client_cfg, "ping", timeout=120)
            mco_wall = time.monotonic() - began
            mco_replies = sum(1 for line in theirs.stdout.splitlines() if "time=" in line)
            print(f"\ncompat round {round_ + 1}: drbootstrap ping {ours_wall:.2f} s ({answered} replies), "
                  f"mco ping {mco_wall:.2f} s ({mco_replies} replies)")
    finally:
        stop_farms(farms)
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
