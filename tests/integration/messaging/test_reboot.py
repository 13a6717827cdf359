"""reboot: the agent replies first, runs its reboot command, and the node's agent comes back."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from drbootstrap.messaging.client import ClientConfig, RpcClient
from drbootstrap.messaging.envelope import StatusCode
from tests.integration.messaging.conftest import new_key
from tests.support.prereq import REPO_ROOT

pytestmark = pytest.mark.integration


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _wait_until_answering(client: RpcClient, identity: str, limit: float = 60.0) -> bool:
    """Ping until the agent answers: a request sent before it subscribed is simply not seen."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if client.ping(expect=[identity]).responded == [identity]:
            return True
    return False


def _inventory_pid(client: RpcClient, identity: str) -> int | None:
    result = client.call("rpcutil", "inventory", targets=[identity], timeout=10)
    return result.replies[0].data["pid"] if result.replies else None


def test_reboot_replies_then_restarts_the_agent_process(activemq, tmp_path):
    url = f"stomp://{activemq.host}:{activemq.port}"
    key = new_key(tmp_path)
    identity = f"rb-{secrets.token_hex(3)}"
    config_path, pid_file, log = tmp_path / "agent.yaml", tmp_path / "agent.pid", tmp_path / "agent.log"
    launched = tmp_path / "launched.pids"  # every relaunched agent's pid ($$ survives exec), for cleanup
    relaunch = (
        f'echo $$ >>{launched}; kill "$DRB_AGENT_PID"; while kill -0 "$DRB_AGENT_PID" 2>/dev/null; do sleep 0.1; done; '
        f"cd {REPO_ROOT} && exec {sys.executable} -m drbootstrap agent --config {config_path} >>{log} 2>&1"
    )
    config_path.write_text(yaml.safe_dump({
        "identity": identity, "brokers": [url], "key_file": str(key), "pid_file": str(pid_file),
        "reboot": {"command": relaunch, "delay": 0.5},
    }))
    first = subprocess.Popen([sys.executable, "-m", "drbootstrap", "agent", "--config", str(config_path)],
                             cwd=REPO_ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)  # noqa: SIM115 - the child owns it
    try:
        with RpcClient(ClientConfig(brokers=[url], key_file=key, discovery_timeout=1)) as client:
            assert _wait_until_answering(client, identity), log.read_text()
            old_pid = _inventory_pid(client, identity)
            assert old_pid == first.pid, log.read_text()

            result = client.call("reboot", "reboot", {"delay": 0.5}, targets=[identity])
            assert result.replies and result.replies[0].status_code == StatusCode.OK, log.read_text()

            first.wait(timeout=60)  # the reboot command ended the old agent
            new_pid = None
            deadline = time.monotonic() + 60
            while new_pid in (None, old_pid) and time.monotonic() < deadline:
                new_pid = _inventory_pid(client, identity)
            assert new_pid not in (None, old_pid), log.read_text()
            assert _pid_from(pid_file) == new_pid
    finally:
        relaunched = {int(line) for line in launched.read_text().split()} if launched.exists() else set()
        for pid in {first.pid, _pid_from(pid_file), *relaunched} - {None}:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if first.poll() is None:
            first.wait(10)
