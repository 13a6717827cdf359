"""The broker step of a broker node (`master.broker.replicas`): its RabbitMQ runs, serves STOMP and is
in one cluster with the master's node, as the node's own agent reports it (broker_node.status), the
same on every cloud. Waits within UpOptions.broker_timeout; the node's last state is the failure's reason.
"""

from __future__ import annotations

from drbootstrap.errors import DrbError, WaitTimeoutError
from drbootstrap.executor.backends import RpcCallFailed
from drbootstrap.executor.context import NodeRuntime, RunContext
from drbootstrap.executor.outcomes import StepFailed, StepResult
from drbootstrap.journal import Fact
from drbootstrap.rabbitmq_membership import BrokerNodeState

POLL_SECONDS = 2.0
CLUSTER_MEMBERS_FACT = "cluster_members"  # how many running nodes the broker node's cluster had


def broker_ready(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """Ask the node's agent for its RabbitMQ's state until it is ready; WaitTimeoutError with the last
    state when it is not within the bound."""
    started = ctx.clock.monotonic()
    deadline = started + ctx.options.broker_timeout
    last = "its agent has not answered broker_node.status yet"
    while True:
        state = _ask(ctx, node)
        if isinstance(state, BrokerNodeState) and state.ready:
            facts: dict[str, Fact] = {CLUSTER_MEMBERS_FACT: len(state.members)}
            return StepResult(f"RabbitMQ {state.node} serves STOMP on {state.stomp}, in the cluster of {state.seed} "
                              f"({len(state.members)} running nodes) after {ctx.clock.monotonic() - started:.1f} s",
                              facts)
        last = state.why if isinstance(state, BrokerNodeState) else state
        if ctx.clock.monotonic() >= deadline:
            raise WaitTimeoutError(f"{node.hostname}: its RabbitMQ was not ready within "
                                   f"{ctx.options.broker_timeout:.0f} s: {last}",
                                   hint="see supervisor.log and rabbitmq/rabbitmq.log in its node directory "
                                        "(`drbootstrap ssh`); a later `up` waits for it again")
        ctx.clock.sleep(POLL_SECONDS)


def _ask(ctx: RunContext, node: NodeRuntime) -> BrokerNodeState | str:
    """The node's state, or why its agent could not say (one line)."""
    try:
        data = ctx.fleet().call(node.fqdn, "broker_node", "status", {}, ctx.options.rpc_timeout)
    except RpcCallFailed as error:
        if "unknown agent" in error.message:  # its agent.yaml names no RabbitMQ: it will never report one
            raise StepFailed(f"{node.hostname}: its agent has no broker_node agent ({error.message})",
                             hint=f"it booted without a broker node's settings: relaunch it "
                                  f"(`drbootstrap up --only {node.hostname} --redo launch`)") from None
        return error.message
    except DrbError as error:
        return error.message
    return BrokerNodeState.from_dict(data)
