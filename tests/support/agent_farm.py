"""A fleet of agents in several processes, for the benchmarks and the broker-cluster tests (a real
fleet runs one agent per node, so they must not all share one process and its GIL).

One process: the agents named on the command line, each an AgentServer with its own STOMP
connection (given every broker of the comma-separated list), until SIGTERM. It prints `ready`
once all are connected; with --report-reconnections, then `reconnected NAME UNIX_TIME` each time
one fails over to another broker.

    python -m tests.support.agent_farm [--report-reconnections] BROKER_URL[,URL...] KEY_FILE \
        BROKER_KIND PROTOCOL NAME...
    (PROTOCOL: native, or mcollective with KEY_FILE holding plugin.psk)

start_farms / stop_farms run such processes from a test, each in its own process group.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

from tests.support.prereq import REPO_ROOT

REPORT_RECONNECTIONS = "--report-reconnections"


def farm_command() -> list[str]:
    return [sys.executable, "-m", "tests.support.agent_farm"]


def start_farms(commands: Sequence[Sequence[str]], env: Mapping[str, str] | None = None) -> list[subprocess.Popen]:
    """Start one farm per command (a farm command and its arguments) and wait for each to say `ready`;
    on a failure the farms already started are stopped before it is raised."""
    farms: list[subprocess.Popen] = []
    try:
        for command in commands:
            farms.append(subprocess.Popen(list(command), cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                                          start_new_session=True, env=None if env is None else dict(env)))
        for farm in farms:
            assert farm.stdout is not None and farm.stdout.readline().strip() == "ready"
    except BaseException:
        stop_farms(farms)
        raise
    return farms


def stop_farms(farms: Sequence[subprocess.Popen], wait: float = 30) -> None:
    """SIGTERM to every farm's process group, then SIGKILL to one that has not ended within WAIT s."""
    for farm in farms:
        if farm.poll() is None:
            os.killpg(farm.pid, signal.SIGTERM)
    for farm in farms:
        try:
            farm.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(farm.pid, signal.SIGKILL)
            farm.wait(10)


class _Reconnections(logging.Handler):
    """The transport's "NAME: reconnected to the broker" warning, as one line with its time."""

    def emit(self, record: logging.LogRecord) -> None:
        found = re.match(r"(\S+): reconnected to the broker", record.getMessage())
        if found:
            print(f"reconnected {found.group(1)} {time.time():.3f}", flush=True)


def main(argv: list[str]) -> int:
    from drbootstrap.agent.config import agent_config_from_dict
    from drbootstrap.agent.daemon import run_agents

    if argv and argv[0] == REPORT_RECONNECTIONS:
        argv = argv[1:]
        logging.getLogger("drbootstrap.transport").addHandler(_Reconnections())
        logging.getLogger("drbootstrap").addHandler(logging.StreamHandler())  # warnings to stderr too
    urls, key_file, kind, protocol, *names = argv
    configs = [agent_config_from_dict({"identity": name, "brokers": urls.split(","), "key_file": key_file,
                                       "protocol": protocol, "broker_kind": kind,
                                       "agents": ["discovery", "rpcutil"]}) for name in names]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    servers = run_agents(configs, wait=120)
    print("ready", flush=True)
    try:
        stop.wait()
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
