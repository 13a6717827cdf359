"""A broker node's readiness (`master.broker.replicas`): the plan gives broker nodes the broker step,
`up` waits there for the node's agent to report its RabbitMQ running, listening and in the master's
cluster, fails that node with TIMEOUT and its last state when it is not, and a later `up` converges."""

from __future__ import annotations

import json

import pytest

from drbootstrap.agent.actions.broker_node import BrokerNodeAgent
from drbootstrap.agent.config import AgentConfig
from drbootstrap.agent.facts import NodeFacts
from drbootstrap.agent.registry import ActionFailed, AgentContext, load_agents
from drbootstrap.errors import WaitTimeoutError
from drbootstrap.executor import UpOptions, run_up
from drbootstrap.executor.broker_readiness import broker_ready
from drbootstrap.exit_status import ExitStatus
from drbootstrap.journal import Journal, Step, StepState
from drbootstrap.plan import BROKER_NODE_STEPS, WORKER_STEPS, build_plan
from drbootstrap.rabbitmq_membership import BrokerNodeState, broker_node_state
from tests.unit.executor_fakes import (  # noqa: F401 - world is a fixture
    SPEC,
    FakeAccess,
    FakeBroker,
    FakeCloud,
    load_spec_text,
    make_context,
    world,
)

CLUSTER = SPEC.replace("master: {hostname: controller, image: master}",
                       "master: {hostname: controller, image: master, "
                       "broker: {kind: rabbitmq, replicas: 3, tls: false}}")


def test_broker_nodes_take_the_broker_step_after_discovery_and_other_nodes_do_not(monkeypatch):
    plan = build_plan(load_spec_text(monkeypatch, CLUSTER))
    steps = {node.hostname: node.steps for node in plan.nodes()}
    assert steps["broker1"] == steps["broker2"] == BROKER_NODE_STEPS
    assert BROKER_NODE_STEPS.index(Step.BROKER) == BROKER_NODE_STEPS.index(Step.DISCOVER) + 1
    assert steps["web01"] == WORKER_STEPS and Step.BROKER not in steps["controller"]


def test_a_group_named_broker_without_replicas_is_an_ordinary_worker(monkeypatch):
    spec = load_spec_text(monkeypatch, SPEC.replace("role: mail", "role: broker"))
    assert all(Step.BROKER not in node.steps for node in build_plan(spec).nodes())


def test_up_ends_only_once_every_broker_node_reports_its_rabbitmq_in_the_masters_cluster(monkeypatch, tmp_path):
    spec = load_spec_text(monkeypatch, CLUSTER)
    cloud = FakeCloud()
    broker = FakeBroker(cloud)
    result = run_up(make_context(spec, tmp_path, cloud, broker, FakeAccess()))
    assert result.exit_status is ExitStatus.OK
    journal = Journal.open(tmp_path, spec.environment)
    done = journal.node("broker2").steps[Step.BROKER]
    assert done.state is StepState.DONE
    assert done.detail.startswith("RabbitMQ drbootstrap@broker2.demo.internal serves STOMP on ")
    assert "in the cluster of drbootstrap@controller.demo.internal (2 running nodes)" in done.detail
    assert broker.calls[("broker2.demo.internal", "broker_node", "status")] == 1
    assert not any(agent == "broker_node" for identity, agent, _ in broker.calls if identity.startswith("web"))


def test_a_broker_node_that_never_joins_fails_with_timeout_and_a_rerun_converges(monkeypatch, tmp_path):
    spec = load_spec_text(monkeypatch, CLUSTER)
    cloud = FakeCloud()
    broker = FakeBroker(cloud)
    broker.rabbitmq_apart = {"broker1.demo.internal"}
    options = UpOptions(broker_timeout=30.0)
    result = run_up(make_context(spec, tmp_path, cloud, broker, FakeAccess(), options=options))
    assert result.exit_status is ExitStatus.PARTIAL
    failed = result.outcomes["broker1"]
    assert failed.step == "broker" and "\n" not in failed.reason
    assert failed.reason.startswith("broker1: its RabbitMQ was not ready within 30 s: not in a cluster with "
                                    "drbootstrap@controller.demo.internal yet")
    assert result.outcomes["broker2"].complete and result.outcomes["web01"].complete
    journal = Journal.open(tmp_path, spec.environment)
    assert journal.node("broker1").steps[Step.BROKER].state is StepState.FAILED
    broker.rabbitmq_apart.clear()  # its supervisor restarted it into the cluster meanwhile
    again = run_up(make_context(spec, tmp_path, cloud, broker, FakeAccess(), options=options))
    assert again.exit_status is ExitStatus.OK
    assert Journal.open(tmp_path, spec.environment).node("broker1").steps[Step.BROKER].state is StepState.DONE


class Answers:
    """A fleet whose broker node answers with STATES in turn (a string: the call fails so)."""

    def __init__(self, states: list) -> None:
        self.states = states

    def call(self, identity, agent, action, data, timeout):
        from drbootstrap.errors import MessagingError

        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(state, str) and "unknown agent" in state:
            from drbootstrap.executor.backends import RpcCallFailed

            raise RpcCallFailed(state, {})
        if isinstance(state, str):
            raise MessagingError(state)
        return state.to_dict()


def readiness_context(monkeypatch, tmp_path, states: list, timeout: float = 20.0):
    spec = load_spec_text(monkeypatch, CLUSTER)
    cloud = FakeCloud()
    options = UpOptions(broker_timeout=timeout)
    ctx = make_context(spec, tmp_path, cloud, FakeBroker(cloud), FakeAccess(), options=options)
    ctx.fleet = lambda: Answers(states)  # type: ignore[method-assign]
    node = type("Node", (), {"hostname": "broker1", "fqdn": "broker1.demo.internal"})()
    return ctx, node


NODE, SEED = "drbootstrap@10.0.0.12", "drbootstrap@10.0.0.11"


def test_the_step_waits_through_starting_states_and_reports_how_long(monkeypatch, tmp_path):
    starting = BrokerNodeState(NODE, True, False, SEED, why="no STOMP on 10.0.0.12:61613 yet: refused")
    ready = BrokerNodeState(NODE, True, True, SEED, (SEED, NODE), "10.0.0.12:61613")
    ctx, node = readiness_context(monkeypatch, tmp_path, ["broker1 did not answer", starting, ready])
    result = broker_ready(ctx, node)
    assert result.detail.endswith("(2 running nodes) after 4.0 s") and result.facts == {"cluster_members": 2}


def test_the_step_fails_with_the_nodes_last_state_in_one_line(monkeypatch, tmp_path):
    dead = BrokerNodeState(NODE, False, False, SEED, why="RabbitMQ is not running (see /n/rabbitmq/rabbitmq.log)")
    ctx, node = readiness_context(monkeypatch, tmp_path, [dead], timeout=10.0)
    with pytest.raises(WaitTimeoutError) as raised:
        broker_ready(ctx, node)
    assert raised.value.message == ("broker1: its RabbitMQ was not ready within 10 s: RabbitMQ is not running "
                                    "(see /n/rabbitmq/rabbitmq.log)")
    assert raised.value.exit_status is ExitStatus.TIMEOUT


def test_a_node_whose_agent_has_no_broker_node_agent_fails_at_once(monkeypatch, tmp_path):
    from drbootstrap.executor.outcomes import StepFailed

    ctx, node = readiness_context(monkeypatch, tmp_path,
                                  ["broker1.demo.internal: broker_node.status failed: unknown agent 'broker_node'"])
    started = ctx.clock.monotonic()
    with pytest.raises(StepFailed, match="^broker1: its agent has no broker_node agent") as raised:
        broker_ready(ctx, node)
    assert ctx.clock.monotonic() == started and "--redo launch" in str(raised.value.hint)


def test_a_node_is_ready_only_running_listening_and_beside_the_seed():
    assert BrokerNodeState(NODE, True, True, SEED, (SEED, NODE)).ready
    assert not BrokerNodeState(NODE, True, True, SEED, (NODE,)).ready  # a cluster of its own
    assert not BrokerNodeState(NODE, True, False, SEED, (SEED, NODE)).ready
    assert BrokerNodeState(NODE, True, True, None, (NODE,)).ready  # outside a cluster
    state = BrokerNodeState(NODE, True, True, SEED, (SEED, NODE), "10.0.0.12:61613")
    assert BrokerNodeState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_a_node_whose_vm_is_gone_is_not_running(tmp_path):
    assert broker_node_state(tmp_path) is None  # never started here
    (tmp_path / "node.json").write_text(json.dumps({"node": NODE, "stomp_host": "10.0.0.12", "stomp_port": 61613,
                                                    "seed": SEED, "epmd_port": 4369}))
    (tmp_path / "rabbitmq.beam.pid").write_text("999999999\n")
    state = broker_node_state(tmp_path)
    assert state is not None and not state.running and not state.ready
    assert state.why == f"RabbitMQ is not running (see {tmp_path / 'rabbitmq.log'})"


def agent_context(**config) -> AgentContext:
    return AgentContext(AgentConfig(identity="broker1.demo.internal", **config), NodeFacts("broker1.demo.internal"))


def test_the_broker_node_agent_is_loaded_only_where_a_rabbitmq_dir_is_configured(tmp_path):
    assert "broker_node" not in load_agents(agent_context(), None)
    agents = load_agents(agent_context(rabbitmq_dir=str(tmp_path)), None)
    assert isinstance(agents["broker_node"], BrokerNodeAgent)
    with pytest.raises(ActionFailed, match="no RabbitMQ node was started in"):
        agents["broker_node"].status(None, {})


def test_the_status_action_reports_the_nodes_state(tmp_path):
    (tmp_path / "node.json").write_text(json.dumps({"node": NODE, "stomp_host": "10.0.0.12", "stomp_port": 61613,
                                                    "seed": SEED, "epmd_port": 4369}))
    agent = BrokerNodeAgent(agent_context(rabbitmq_dir=str(tmp_path)))
    data = agent.status(None, {})
    assert data["node"] == NODE and data["ready"] is False and data["running"] is False
