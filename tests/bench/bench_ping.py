"""Benchmark: one ping round over 200 compat-mode agents, `drbootstrap ping` beside real `mco ping`;
idle resident memory and CPU of one agent beside one mcollectived.

Run: python -m pytest tests/bench/bench_ping.py -s   (root; DRB_BENCH_AGENTS=N to change 200)
"""

from __future__ import annotations

import json
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

from tests.support.mcollective import (
    new_psk,
    start_mcollectived,
    write_mcollective_config,
)
from tests.support.prereq import REPO_ROOT, require, require_binary, require_root

pytestmark = pytest.mark.bench

AGENTS = int(os.environ.get("DRB_BENCH_AGENTS", "200"))
ROUNDS = 3
IDLE_SETTLE = 5.0  # let start-up garbage settle before reading RSS
CPU_WINDOW = 10.0
TARGET_PING_S = 0.5
TARGET_RSS_KB = 28 * 1024

# Many identities in one process through the native helper's multi-identity runner (the same
# code as `drbootstrap agent --config a.yaml --config b.yaml ...`): each identity is an AgentServer
# with its own STOMP connection; `protocol: mcollective` picks the compat codec.
FARM = """
import signal, sys, threading
from drbootstrap.agent.config import AgentConfig
from drbootstrap.agent.daemon import run_agents
broker, psk_file, prefix, count, ready = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
configs = [AgentConfig(identity=f"{prefix}{index:03d}", brokers=[broker], key_file=psk_file, protocol="mcollective",
                       agents=["discovery", "rpcutil"], role="bench") for index in range(count)]
servers = run_agents(configs, wait=60)
open(ready, "w").write("ready")
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
for server in servers:
    server.stop()
"""

# What `drbootstrap ping --protocol mcollective --expect ...` does, as a whole process, for as
# long as the CLI command is not there to time instead.
PING = """
import sys, time
from drbootstrap.messaging.client import ClientConfig, RpcClient
from drbootstrap.messaging.mcollective import make_mcollective_protocol
broker, psk_file, expect_file = sys.argv[1], sys.argv[2], sys.argv[3]
expected = open(expect_file).read().split()
config = ClientConfig(brokers=[broker], identity="bench", discovery_timeout=10.0)
with RpcClient(config, protocol=make_mcollective_protocol(psk_file)) as client:
    result = client.ping(expect=expected)
print(len(result.replies), f"{result.elapsed_ms:.1f}")
"""


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def _drbootstrap() -> str:
    """The installed console script beside this interpreter; a pyenv shim in PATH adds ~0.2 s of bash."""
    beside = Path(sys.executable).parent / "drbootstrap"
    return str(beside) if beside.exists() else (shutil.which("drbootstrap") or "drbootstrap")


def _compile_package() -> None:
    """Fresh .pyc files, as an installed package has: with PYTHONDONTWRITEBYTECODE set (this
    machine's shells) every module edited since its last .pyc was compiled again on every run,
    mcollective.py alone for about 20 ms."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_ROOT / "drbootstrap")],
                   env={key: value for key, value in _env().items() if key != "PYTHONDONTWRITEBYTECODE"},
                   capture_output=True, check=True)


def _cli_has_protocol_option() -> bool:
    done = subprocess.run([_drbootstrap(), "ping", "--help"], capture_output=True, text=True, check=False)
    return done.returncode == 0 and "--protocol" in done.stdout


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout:.0f}s")
        time.sleep(0.2)


def test_ping_round_over_200_agents_against_real_mco_ping():
    require_root()
    require_binary("mco", "mcollectived", "java")
    require(Path("/usr/share/activemq/bin/activemq.jar").exists(), "Debian's activemq package")
    from drbootstrap.broker import start_broker

    work = Path(tempfile.mkdtemp(prefix="drb-bench-ping-"))
    processes: list[subprocess.Popen] = []
    daemon = broker = None
    try:
        broker = start_broker(work / "amq", heap_mb=512)
        psk = new_psk()
        psk_file = work / "psk"
        psk_file.write_text(psk)
        psk_file.chmod(0o600)
        prefix = f"bench{secrets.token_hex(2)}-"
        identities = [f"{prefix}{index:03d}" for index in range(AGENTS)]
        (work / "expect").write_text("\n".join(identities))
        client_cfg = write_mcollective_config(
            work / "client.cfg", identity="bench-mco", broker_host=broker.host, broker_port=broker.port, psk=psk
        )

        started = time.monotonic()
        farm = subprocess.Popen(
            _python(FARM, broker.url, str(psk_file), prefix, str(AGENTS), str(work / "farm.ready")),
            env=_env(),
            start_new_session=True,
        )
        processes.append(farm)
        _wait_for(work / "farm.ready", farm, 300, "the agent farm")
        farm_start_s = time.monotonic() - started

        _compile_package()
        use_cli = _cli_has_protocol_option()
        rows = []
        for _ in range(ROUNDS):
            rows.append(("drbootstrap ping", *_time_drb_ping(broker.url, psk_file, work / "expect", use_cli)))
            rows.append(("mco ping", *_time_mco_ping(client_cfg)))

        # Idle comparison: one mcollectived (another collective, so it stays out of the rounds)
        # and one single-identity drbootstrap agent.
        server_cfg = write_mcollective_config(
            work / "server.cfg", identity="bench-legacy", broker_host=broker.host, broker_port=broker.port, psk=psk,
            collective="idle", loglevel="debug",
        )
        daemon = start_mcollectived(server_cfg, "bench-legacy", collective="idle")
        single = _start_single_agent(work, broker.url, psk_file, use_cli)
        processes.append(single)
        time.sleep(IDLE_SETTLE)
        rss = {"drbootstrap agent": _rss_kb(single.pid), "mcollectived": _rss_kb(daemon.pid)}
        cpu_before = {"drbootstrap agent": _cpu_seconds(single.pid), "mcollectived": _cpu_seconds(daemon.pid)}
        time.sleep(CPU_WINDOW)
        cpu = {
            "drbootstrap agent": _cpu_seconds(single.pid) - cpu_before["drbootstrap agent"],
            "mcollectived": _cpu_seconds(daemon.pid) - cpu_before["mcollectived"],
        }
        farm_rss = _rss_kb(farm.pid)
    finally:
        for process in processes:
            _stop(process)
        if daemon is not None:
            daemon.stop()
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    _report(rows, rss, cpu, farm_rss, farm_start_s, use_cli)
    for name, replies, _, _ in rows:
        assert replies == AGENTS, f"{name} got {replies} of {AGENTS} replies"


def _time_drb_ping(broker_url: str, psk_file: Path, expect_file: Path, use_cli: bool) -> tuple[int, float, str]:
    if use_cli:
        command = [_drbootstrap(), "ping", "--protocol", "mcollective", "--broker", broker_url,
                   "--key-file", str(psk_file), "--expect", f"@{expect_file}", "--json"]
    else:
        command = _python(PING, broker_url, str(psk_file), str(expect_file))
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=120, check=False)
    wall = time.monotonic() - started
    if use_cli:
        replies = _count_cli_replies(done.stdout)
    else:
        replies = int(done.stdout.split()[0]) if done.returncode == 0 else 0
    return replies, wall, "CLI" if use_cli else "client script"


def _count_cli_replies(stdout: str) -> int:
    try:
        document = json.loads(stdout)
    except ValueError:
        return 0
    replies = document.get("replies", document) if isinstance(document, dict) else document
    return len(replies)


def _time_mco_ping(client_cfg: Path) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run(
        ["mco", "ping", "--config", str(client_cfg)], capture_output=True, text=True, timeout=120, check=False
    )
    wall = time.monotonic() - started
    return sum(1 for line in done.stdout.splitlines() if " time=" in line), wall, "mco 2.12.5"


def _start_single_agent(work: Path, broker_url: str, psk_file: Path, use_cli: bool) -> subprocess.Popen:
    ready = work / "single.ready"
    if use_cli:
        config = work / "agent.yaml"
        config.write_text(
            json.dumps({"identity": "bench-single", "brokers": [broker_url], "key_file": str(psk_file),
                        "protocol": "mcollective", "agents": ["discovery", "rpcutil"]})
        )
        process = subprocess.Popen([_drbootstrap(), "agent", "--config", str(config)], start_new_session=True)
        time.sleep(3.0)  # no ready file from the CLI; IDLE_SETTLE follows anyway
        return process
    process = subprocess.Popen(
        _python(FARM, broker_url, str(psk_file), "bench-single", "1", str(ready)), env=_env(), start_new_session=True
    )
    _wait_for(ready, process, 60, "the single agent")
    return process


def _report(rows, rss, cpu, farm_rss, farm_start_s, use_cli) -> None:
    print(
        f"\n## ping ({AGENTS} agents, {ROUNDS} rounds; "
        f"drbootstrap timed as {'the CLI' if use_cli else 'a client script'})"
    )
    print(f"{'command':<18} {'replies':>8} {'wall s':>8}")
    for name, replies, wall, how in rows:
        print(f"{name:<18} {replies:>8} {wall:>8.3f}   ({how})")
    best = min(wall for name, _, wall, _ in rows if name == "drbootstrap ping")
    print(
        f"drbootstrap ping best {best:.3f}s vs target {TARGET_PING_S}s: {'met' if best < TARGET_PING_S else 'MISSED'}"
    )
    for name in rss:
        print(f"{name:<18} idle RSS {rss[name] / 1024:6.1f} MB, CPU over {CPU_WINDOW:.0f}s: {cpu[name]:.2f}s")
    print(
        f"RSS target (agent <= mcollectived): {'met' if rss['drbootstrap agent'] <= rss['mcollectived'] else 'MISSED'}"
    )
    print(f"farm of {AGENTS} identities: started in {farm_start_s:.1f}s, RSS {farm_rss / 1024:.1f} MB")
