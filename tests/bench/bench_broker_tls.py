"""Benchmark: what stomp+ssl costs on the local cloud, where it is off by default. The master's broker
started as images/master/boot.sh starts it (plain; stomp+ssl with a certificate issued under the
environment's CA; the earlier self-signed keytool one), alternating, then agents connecting and a
ping over each link.

Run: python -m pytest tests/bench/bench_broker_tls.py -s   (root; DRB_BENCH_TLS_ROUNDS, DRB_BENCH_TLS_AGENTS)
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pytest

from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.daemon import run_agents
from drbootstrap.broker import free_port
from drbootstrap.messaging.broker_ca import issue_broker_certificate, issue_master_ca, make_environment_ca
from drbootstrap.messaging.client import ClientConfig, RpcClient
from tests.integration.messaging.test_master_broker_tls import NODE_ADDRESS, start_master_broker, stop

pytestmark = pytest.mark.bench

ROUNDS = int(os.environ.get("DRB_BENCH_TLS_ROUNDS", "3"))
AGENTS = int(os.environ.get("DRB_BENCH_TLS_AGENTS", "20"))


def start_plain(base: Path, port: int) -> int:
    import subprocess
    import sys

    output = subprocess.run(
        [sys.executable, "-m", "drbootstrap.images.master_services", "broker", "--base-dir", str(base),
         "--host", NODE_ADDRESS, "--port", str(port)], check=True, capture_output=True, text=True, timeout=120)
    return int(output.stdout.strip())


def test_bench_broker_start_and_agents_over_stomp_and_stomp_ssl():
    ca = make_environment_ca("bench")
    issuer = issue_master_ca(ca, "bench")
    started = time.perf_counter()
    for _ in range(20):
        issue_broker_certificate(issuer, (NODE_ADDRESS, "controller.bench.internal"))
    print(f"\nissue a broker certificate: {(time.perf_counter() - started) / 20 * 1000:.1f} ms")
    kinds = {"plain": lambda b, p: start_plain(b, p), "tls (CA)": lambda b, p: start_master_broker(b, p, issuer),
             "tls (keytool, self-signed)": lambda b, p: start_master_broker(b, p)}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(ROUNDS):
        for kind, start in kinds.items():
            base = Path(tempfile.mkdtemp(prefix="drb-bench-tls-"))
            began = time.perf_counter()
            pid = start(base, free_port(NODE_ADDRESS))
            times[kind].append(time.perf_counter() - began)
            stop(pid)
            shutil.rmtree(base, ignore_errors=True)
    for kind, seconds in times.items():
        print(f"broker start, {kind}: median {statistics.median(seconds):.2f} s "
              f"({', '.join(f'{s:.2f}' for s in seconds)})")

    for kind in ("plain", "tls (CA)"):
        base = Path(tempfile.mkdtemp(prefix="drb-bench-tls-"))
        port = free_port(NODE_ADDRESS)
        (base / "ca.pem").write_text(ca.cert_pem)
        pid = start_plain(base, port) if kind == "plain" else start_master_broker(base, port, issuer)
        scheme = "stomp" if kind == "plain" else "stomp+ssl"
        tls = {} if kind == "plain" else {"tls_ca": str(base / "ca.pem")}
        key = base / "psk"
        key.write_text(secrets.token_hex(32))
        names = [f"tls{i:03d}" for i in range(AGENTS)]
        url = f"{scheme}://{NODE_ADDRESS}:{port}"
        try:
            began = time.perf_counter()
            servers = run_agents([agent_config_from_dict({"identity": n, "brokers": [url], "key_file": str(key),
                                                          "agents": ["discovery", "rpcutil"], **tls})
                                  for n in names], wait=60)
            connected = time.perf_counter() - began
            try:
                began = time.perf_counter()
                config = ClientConfig([url], key_file=key, discovery_timeout=5,
                                      tls_ca=base / "ca.pem" if tls else None)
                with RpcClient(config) as client:
                    client_connected = time.perf_counter() - began
                    pings = [client.ping(expect=names) for _ in range(3)]
                print(f"{kind}: {AGENTS} agents connected in {connected:.2f} s, client in "
                      f"{client_connected * 1000:.0f} ms, ping --expect {[p.summary() for p in pings]}")
            finally:
                for server in servers:
                    server.stop()
        finally:
            stop(pid)
            shutil.rmtree(base, ignore_errors=True)
