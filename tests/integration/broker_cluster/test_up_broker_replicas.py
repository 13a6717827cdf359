"""`up` with `master.broker.replicas: 3` on the local cloud: two broker nodes beside the master
join its RabbitMQ node; one of them is killed while `up` runs, and `up` still completes, every
agent (told all three brokers) answering through the two left."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.support.prereq import require

pytestmark = [pytest.mark.integration, E2E_GATE]

SPEC = """\
environment: demo
domain: demo.internal
provider:
  name: local
  network: 10.213.0.0/24
master:
  hostname: controller
  broker:
    kind: rabbitmq
    replicas: 3
  puppet:
    mode: apply
nodes:
  - role: app
    hostnames: [app01, app02]
    checks:  # keeps `up` running until broker2's RabbitMQ is ready and a while after (the kill's window)
      - command: "for i in $(seq 240); do test -s BROKER2_PID && sleep 15 && exit 0; sleep 0.5; done; exit 1"
        timeout_seconds: 180
"""
NODES = ["app01", "app02", "broker1", "broker2", "controller"]


@pytest.fixture(scope="module")
def environment():
    require(Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists(), "RabbitMQ (Debian `rabbitmq-server`)")
    env = make_environment(SPEC, "upcluster")
    # broker2 starts RabbitMQ in the background (its agent does not wait for it): without the
    # app nodes' check, `up` could end before it is ready, and nothing would die midway.
    env.spec_file.write_text(env.spec_file.read_text().replace(
        "BROKER2_PID", str(env.paths.nodes / "broker2" / "var" / "rabbitmq.pid")))
    try:
        run = env.start("up", str(env.spec_file), "--json")
        victim = env.paths.nodes / "broker2" / "var" / "rabbitmq.pid"
        deadline = time.monotonic() + 600
        while not victim.is_file() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        env.killed = False
        if victim.is_file():  # broker2's RabbitMQ (started by this `up`): killed as a crash would
            os.killpg(os.getpgid(int(victim.read_text())), signal.SIGKILL)
            env.killed = run.poll() is None
        env.output, _ = run.communicate(timeout=900)
        env.returncode = run.returncode
        yield env
    finally:
        tear_down(env)


def test_up_completes_with_a_broker_node_killed_midway(environment):
    assert environment.killed, "broker2's RabbitMQ never started while `up` ran"
    assert environment.returncode == 0, environment.output[-4000:]
    result = json.loads(environment.output.splitlines()[-1])
    assert result["event"] == "result" and result["failed"] == []
    assert environment.live_hostnames() == NODES


def test_the_broker_nodes_joined_the_masters_node_and_every_agent_knows_all_three(environment):
    nodes = environment.paths.nodes
    master_log = (nodes / "controller" / "var" / "rabbitmq" / "rabbitmq.log").read_text(errors="replace")
    assert "rabbit on node 'drbootstrap@" in master_log  # a broker node came up in its cluster
    for hostname in ("controller", "app01", "broker1"):
        agent = (nodes / hostname / "var" / "agent.yaml").read_text()
        assert "broker1.demo.internal" in agent and "broker2.demo.internal" in agent, hostname
    cookie = nodes / "broker1" / "var" / "rabbitmq" / ".erlang.cookie"
    assert cookie.stat().st_mode & 0o077 == 0


def test_status_pings_every_agent_after_the_broker_node_died(environment):
    run = environment.cli("status", str(environment.spec_file), "--json", timeout=120)
    status = json.loads(run.stdout)
    assert {n["hostname"]: n["agent"] for n in status["nodes"]} == dict.fromkeys(NODES, "answers")
