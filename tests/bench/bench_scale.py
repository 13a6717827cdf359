"""Benchmark: discovery and one RPC over 1,000 and 5,000 agents, beside Debian's `mco ping`.

Run: python -m pytest tests/bench/bench_scale.py -s   (root)
  DRB_BENCH_COUNTS=1000,5000  fleet sizes, grown in place (default 1000,5000)
  DRB_BENCH_PER_PROCESS=125   identities per agent process (default 125: 5,000 = 40 processes)
  DRB_BENCH_KINDS=activemq,rabbitmq
  DRB_BENCH_ROUNDS=3
  DRB_BENCH_PYTHONPATH=DIR    run the agents and the client from another copy of the package
                              (a before/after comparison in one sitting)

Each agent identity is an AgentServer with its own STOMP connection, speaking MCollective 2.12
(psk, Ruby Marshal), so Debian's `mco ping` sees the same fleet on the same broker. The client is
the installed console script with a user's defaults: a client config file ($DRB_CLIENT_CONFIG:
brokers, key, protocol, broker kind) and `--expect @FILE`, the expected-identity early stop.
Per round: `drbootstrap ping` (whole process, and the round from request to the last expected
reply from its --json), `drbootstrap rpc rpcutil ping` (discovery + one direct request per node)
and `mco ping`; the client's peak RSS (wait4), the agents' RSS per identity, the broker's RSS
(process group) idle and with the fleet, the agents' and the broker's CPU during each `drbootstrap
ping`, and the load average with each figure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.bench.bench_broker_kinds import group_rss_mb, start
from tests.support.agent_farm import farm_command, start_farms, stop_farms
from tests.support.mcollective import new_psk, write_mcollective_config
from tests.support.prereq import REPO_ROOT, require_binary, require_root

pytestmark = pytest.mark.bench

COUNTS = [int(n) for n in os.environ.get("DRB_BENCH_COUNTS", "1000,5000").split(",")]
PER_PROCESS = int(os.environ.get("DRB_BENCH_PER_PROCESS", "125"))
KINDS = os.environ.get("DRB_BENCH_KINDS", "activemq,rabbitmq").split(",")
ROUNDS = int(os.environ.get("DRB_BENCH_ROUNDS", "3"))
OTHER_CODE = os.environ.get("DRB_BENCH_PYTHONPATH", "")


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "MCOLLECTIVE_PSK"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (OTHER_CODE, str(REPO_ROOT)) if p)
    return env


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _timed(command: list[str], env: dict[str, str], timeout: float = 300) -> tuple[float, float, str, int]:
    """Wall seconds, peak RSS MB (wait4), stdout and exit status of one whole client process."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - read back below, closed with the test's temp files
    began = time.monotonic()
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=env)
    deadline = began + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.005)
    wall = time.monotonic() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read().decode(errors="replace")
    out.close()
    return wall, usage.ru_maxrss / 1024, text, process.returncode


def _cpu_seconds(pgids: list[int]) -> float:
    """User + system CPU of every process in these process groups (/proc/PID/stat)."""
    ticks = 0
    wanted = set(pgids)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in wanted:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _replies(stdout: str) -> tuple[int, float]:
    try:
        document = json.loads(stdout)
    except ValueError:
        return 0, float("nan")
    times = [reply["time_ms"] for reply in document.get("replies", [])]
    return len(times), max(times) if times else float("nan")


def _farm_command() -> list[str]:
    """The farm's command; with DRB_BENCH_PYTHONPATH the other copy's drbootstrap goes first (`-m`
    would put the working directory, this checkout, ahead of PYTHONPATH)."""
    if not OTHER_CODE:
        return farm_command()
    code = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
            "runpy.run_module('tests.support.agent_farm', run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", code, OTHER_CODE]


def _start_farms(names: list[str], url: str, key: Path, kind: str) -> list[subprocess.Popen]:
    return start_farms([[*_farm_command(), url, str(key), kind, "mcollective", *names[index:index + PER_PROCESS]]
                        for index in range(0, len(names), PER_PROCESS)], env=_env())


@pytest.mark.parametrize("kind", KINDS)
def test_bench_discovery_and_rpc_at_scale_beside_mco_ping(kind):
    require_root()
    require_binary("mco")
    work = Path(tempfile.mkdtemp(prefix=f"drb-bench-scale-{kind}-"))
    broker = start(kind, work / "broker")
    psk = new_psk()
    key = work / "psk"
    key.write_text(psk)
    key.chmod(0o600)
    client_file = work / "client.yaml"
    client_file.write_text(json.dumps({"brokers": [broker.url], "key_file": str(key), "protocol": "mcollective",
                                       "broker_kind": kind}))
    mco_cfg = write_mcollective_config(work / "mco.cfg", identity="mco-bench", broker_host=broker.host,
                                       broker_port=broker.port, psk=psk, connector=kind, loglevel="info")
    env = {**_env(), "DRB_CLIENT_CONFIG": str(client_file)}
    drb = str(Path(sys.executable).parent / "drbootstrap")
    names: list[str] = []
    farms: list[subprocess.Popen] = []
    idle = group_rss_mb(broker.pid)
    rows = []
    try:
        for count in COUNTS:
            added = [f"s{i:05d}.bench.test" for i in range(len(names), count)]
            began = time.monotonic()
            farms += _start_farms(added, broker.url, key, kind)
            names += added
            connected = time.monotonic() - began
            (work / "expect").write_text("\n".join(names) + "\n")
            time.sleep(2)  # let the connection storm's garbage settle before reading RSS
            print(f"\n{kind}: {count} agents in {len(farms)} processes ({PER_PROCESS} each); "
                  f"the {len(added)} new ones connected in {connected:.1f} s (load {_load()})")
            for round_ in range(1, ROUNDS + 1):
                load = _load()
                agents_cpu, broker_cpu = _cpu_seconds([f.pid for f in farms]), _cpu_seconds([broker.pid])
                wall, rss, out, status = _timed([drb, "ping", "--expect", f"@{work / 'expect'}", "--json"], env)
                got, last = _replies(out)
                agents_cpu = _cpu_seconds([f.pid for f in farms]) - agents_cpu
                broker_cpu = _cpu_seconds([broker.pid]) - broker_cpu
                rwall, rrss, rout, rstatus = _timed([drb, "rpc", "--expect", f"@{work / 'expect'}", "--json",
                                                     "rpcutil", "ping"], env)
                rgot, _ = _replies(rout)
                mwall, mrss, mout, _ = _timed(["mco", "ping", "--config", str(mco_cfg)], env)
                mgot = sum(1 for line in mout.splitlines() if " time=" in line)
                rows.append((kind, count, round_, load, got, last, wall, rss, rgot, rwall, rrss, mgot, mwall, mrss))
                print(f"{kind} {count} round {round_} (load {load}): drbootstrap ping {got} replies, "
                      f"last expected at {last:.0f} ms, process {wall:.2f} s, client RSS {rss:.0f} MB, "
                      f"CPU in the round: agents {agents_cpu:.2f} s, broker {broker_cpu:.2f} s | "
                      f"rpc rpcutil ping {rgot} replies, {rwall:.2f} s, RSS {rrss:.0f} MB | "
                      f"mco ping {mgot} replies, {mwall:.2f} s, RSS {mrss:.0f} MB")
            rss = group_rss_mb(broker.pid)
            agents = [group_rss_mb(farm.pid) for farm in farms]
            print(f"{kind} {count}: broker RSS {idle:.0f} MB idle, {rss:.0f} MB with the fleet "
                  f"({(rss - idle) / count * 1000:.0f} MB per 1000 agents); agent processes "
                  f"{min(agents):.0f}-{max(agents):.0f} MB for {PER_PROCESS} identities "
                  f"({sum(agents) / count * 1000:.0f} MB per 1000 identities, load {_load()})")
    finally:
        stop_farms(farms, wait=60)
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        assert row[4] == row[1], f"drbootstrap ping: {row[4]} of {row[1]} answered"
