"""The broker_node agent (on a broker node of `master.broker.replicas`): the state of the node's
RabbitMQ (running, serving STOMP, in the master's cluster), what `up`'s broker step waits for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drbootstrap.agent.registry import ActionFailed, RpcAgent, action
from drbootstrap.messaging.envelope import Request, StatusCode


class BrokerNodeAgent(RpcAgent):
    name = "broker_node"
    description = "A broker node's RabbitMQ: running, serving STOMP, in a cluster with the master's node."

    @action("The node's RabbitMQ: running, listening on its STOMP port, the cluster's running nodes", slow=True)
    def status(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        from drbootstrap.rabbitmq_membership import broker_node_state

        directory = self.context.config.rabbitmq_dir
        state = broker_node_state(Path(directory)) if directory else None
        if state is None:
            raise ActionFailed(StatusCode.ABORTED, f"no RabbitMQ node was started in {directory} yet")
        return state.to_dict()
