"""Benchmark (native protocol): ping round over 200 in-process agents, broker-restart recovery,
and the idle RSS of one `drbootstrap agent` process.

Run: python -m pytest tests/bench/bench_native_rpc.py -s   (root; DRB_BENCH_AGENTS=N to change 200)
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.daemon import run_agents
from drbootstrap.messaging.client import ClientConfig, RpcClient
from tests.support.activemq import start_test_broker
from tests.support.prereq import REPO_ROOT

pytestmark = pytest.mark.bench

AGENTS = int(os.environ.get("DRB_BENCH_AGENTS", "200"))


@pytest.fixture
def broker_and_key():
    work = Path(tempfile.mkdtemp(prefix="drb-bench-native-"))
    broker = start_test_broker(work / "amq")
    key = work / "psk"
    key.write_text(secrets.token_hex(32))
    try:
        yield broker, key, work
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_bench_native_ping_and_broker_restart_recovery(broker_and_key):
    broker, key, _ = broker_and_key
    url = f"stomp://{broker.host}:{broker.port}"
    names = [f"bn{i:03d}" for i in range(AGENTS)]
    started = time.monotonic()
    servers = run_agents([agent_config_from_dict({"identity": n, "brokers": [url], "key_file": str(key),
                                                  "agents": ["discovery", "rpcutil"]}) for n in names], wait=60)
    print(f"\n{AGENTS} agents connected in {time.monotonic() - started:.2f} s (one process)")
    try:
        config = ClientConfig(brokers=[url], key_file=key, discovery_timeout=5)
        with RpcClient(config) as client:
            for _ in range(5):
                result = client.ping(expect=names)
                print(f"ping --expect: {result.summary()}")
            print(f"ping (sliding window): {client.ping().summary()}")
            print(f"direct rpcutil.ping: {client.call('rpcutil', 'ping', targets=names).summary()}")
        broker.kill()
        broker.restart()
        ready = time.monotonic()
        answered: set[str] = set()
        while answered != set(names) and time.monotonic() - ready < 60:
            try:
                with RpcClient(config) as client:
                    answered |= set(client.ping(expect=names).responded)
            except Exception:  # noqa: BLE001
                time.sleep(0.1)
        print(f"after kill -9 + restart: {len(answered)}/{AGENTS} answering "
              f"{time.monotonic() - ready:.2f} s after the broker served STOMP again")
    finally:
        for server in servers:
            server.stop()


def test_bench_idle_agent_resident_memory(broker_and_key):
    broker, key, work = broker_and_key
    config = work / "agent.yaml"
    config.write_text(yaml.safe_dump({"identity": "rss-bench", "brokers": [f"stomp://{broker.host}:{broker.port}"],
                                      "key_file": str(key)}))
    agent = subprocess.Popen([sys.executable, "-m", "drbootstrap", "agent", "--config", str(config)], cwd=REPO_ROOT)
    try:
        with RpcClient(ClientConfig(brokers=[broker.url], key_file=key, discovery_timeout=1)) as client:
            deadline = time.monotonic() + 30
            while not client.ping(expect=["rss-bench"]).responded and time.monotonic() < deadline:
                pass
            client.call("rpcutil", "inventory", targets=["rss-bench"])
        time.sleep(5)
        status = Path(f"/proc/{agent.pid}/status").read_text()
        rss = int(status.split("VmRSS:")[1].split()[0])
        threads = int(status.split("Threads:")[1].split()[0])
        cpu = sum(int(x) for x in Path(f"/proc/{agent.pid}/stat").read_text().split()[13:15])
        time.sleep(10)
        cpu_idle = sum(int(x) for x in Path(f"/proc/{agent.pid}/stat").read_text().split()[13:15]) - cpu
        print(f"\nidle agent: RSS {rss / 1024:.1f} MB, {threads} threads, {cpu_idle} CPU ticks in 10 s idle")
    finally:
        agent.terminate()
        agent.wait(10)
