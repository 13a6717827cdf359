"""`up` with `master.broker.replicas: 3` on the local cloud: two broker nodes beside the master
join its RabbitMQ node, and `up` waits for each (its broker step); one of them is killed while `up`
runs, and `up` still completes, every agent (told all three brokers) answering. A broker node's
RabbitMQ is supervised: killed after `up`, it comes back and the master's node lists it again."""

from __future__ import annotations

import json
import os
import signal
import sys
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
    checks:  # keeps `up` running until broker2's RabbitMQ has started and a while after (the kill's window)
      - command: "for i in $(seq 240); do test -s BROKER2_PID && sleep 15 && exit 0; sleep 0.5; done; exit 1"
        timeout_seconds: 180
"""
NODES = ["app01", "app02", "broker1", "broker2", "controller"]


@pytest.fixture(scope="module")
def environment():
    require(Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists(), "RabbitMQ (Debian `rabbitmq-server`)")
    env = make_environment(SPEC, "upcluster")
    # broker2 starts RabbitMQ in the background beside its agent: the app nodes' check keeps `up`
    # running a while after it started, whatever the order of the nodes' steps, the kill's window.
    victim = env.paths.nodes / "broker2" / "var" / "rabbitmq" / "rabbitmq.beam.pid"  # its Erlang VM's
    env.spec_file.write_text(env.spec_file.read_text().replace("BROKER2_PID", str(victim)))
    try:
        run = env.start("up", str(env.spec_file), "--json")
        deadline = time.monotonic() + 600
        while not victim.is_file() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        env.killed = False
        if victim.is_file():  # broker2's RabbitMQ (started by this `up`): killed as a crash would, all its group
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
    restarts = (environment.paths.nodes / "broker2" / "var" / "supervisor.log").read_text()
    # Its supervisor's doing: killed once started ("ended") or while starting ("did not start").
    assert "restarting it in 1 s" in restarts and restarts.count("rabbitmq running (pid") >= 1, restarts


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


def test_up_waited_for_each_broker_nodes_rabbitmq_in_the_masters_cluster(environment):
    events = [json.loads(line) for line in environment.output.splitlines() if line.startswith("{")]
    for hostname in ("broker1", "broker2"):
        done = [e for e in events if e.get("node") == hostname and e.get("step") == "broker" and e["state"] == "done"]
        assert done and " in the cluster of drbootstrap@" in done[-1]["detail"], hostname
        print(f"{hostname} broker step: {done[-1]['detail']}")
    report = {node["hostname"]: node for node in environment.report()["nodes"]}
    steps = {step["step"]: step for step in report["broker1"]["steps"]}
    assert steps["broker"]["state"] == "done" and steps["broker"]["detail"].startswith("RabbitMQ drbootstrap@")
    assert "broker" not in {step["step"] for step in report["app01"]["steps"]}


def master_running_nodes(environment) -> list[str]:
    """The running nodes of the cluster as the master's RabbitMQ node says (rabbitmqctl cluster_status,
    run in the master)."""
    base = environment.paths.nodes / "controller" / "var" / "rabbitmq"
    code = ("import json, sys; from pathlib import Path; from drbootstrap.rabbitmq_membership import running_nodes; "
            "d = json.loads(Path(sys.argv[1], 'node.json').read_text()); "
            "print(json.dumps(running_nodes(Path(sys.argv[1]), d['node'], d['epmd_port'])))")
    nodes, why = json.loads(environment.in_node("controller", f"{sys.executable} -c \"{code}\" {base}"))
    assert not why, why
    return nodes


def test_a_broker_nodes_rabbitmq_killed_comes_back_and_rejoins_the_masters_node(environment):
    from drbootstrap.rabbitmq_membership import alive, beam_pid

    base = environment.paths.nodes / "broker1" / "var" / "rabbitmq"
    node = json.loads((base / "node.json").read_text())["node"]
    assert node in master_running_nodes(environment)
    pid = beam_pid(base)
    assert pid is not None and alive(pid)
    os.kill(pid, signal.SIGKILL)  # its Erlang VM only, by the pid in its pid file: a crash
    killed = time.monotonic()
    back = None
    while time.monotonic() - killed < 180:
        again = beam_pid(base)
        if again not in (None, pid) and alive(again) and node in master_running_nodes(environment):
            back = time.monotonic() - killed
            break
        time.sleep(1)
    log_file = environment.paths.nodes / "broker1" / "var" / "supervisor.log"
    log = log_file.read_text()
    assert back is not None, f"{node} not back in the master's cluster 180 s after its kill:\n{log[-2000:]}"
    print(f"broker1's RabbitMQ killed: back and listed by the master's node after {back:.1f} s")
    # The supervisor logs "running" once the restarted node takes STOMP CONNECTs, which can come
    # after the master lists it as a cluster member: wait for that line too.
    deadline = time.monotonic() + 60
    while log.count("rabbitmq running (pid") < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        log = log_file.read_text()
    assert f"rabbitmq ended (pid {pid}, exit status " in log and "restarting it in 1 s" in log
    assert log.count("rabbitmq running (pid") >= 2  # started, then restarted (one line each)


def test_logs_shows_a_broker_nodes_supervisor_log_and_refuses_a_broker_log_where_none_runs(environment):
    from drbootstrap.exit_status import ExitStatus

    shown = environment.cli("logs", str(environment.spec_file), "broker1", "--log", "broker", timeout=120)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "== broker1: broker (" in shown.stdout and "supervisor.log) ==" in shown.stdout
    assert "rabbitmq running (pid" in shown.stdout, shown.stdout
    everything = environment.cli("logs", str(environment.spec_file), "broker1", timeout=120)
    assert everything.returncode == 0 and "== broker1: broker (" in everything.stdout, everything.stdout
    assert "== app01: broker" not in environment.cli("logs", str(environment.spec_file), "app01", timeout=120).stdout
    refused = environment.cli("logs", str(environment.spec_file), "app01", "--log", "broker", timeout=120)
    assert refused.returncode == ExitStatus.NOT_FOUND and refused.stdout == "", refused.stdout
    assert "app01 runs no broker" in refused.stderr and len(refused.stderr.strip().splitlines()) <= 2, refused.stderr
