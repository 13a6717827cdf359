"""The rpcutil agent: ping, inventory (agents, facts, classes) and get_fact."""

from __future__ import annotations

import os
import time
from typing import Any

from drbootstrap.agent.registry import ActionFailed, Input, RpcAgent, action
from drbootstrap.messaging.envelope import Request, StatusCode

_STARTED = time.time()


class RpcutilAgent(RpcAgent):
    name = "rpcutil"
    description = "General helpers: ping, inventory and single facts."

    @action("Reply pong with the node's clock")
    def ping(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        return {"pong": int(time.time())}

    @action("The node's agents, facts, classes and agent version")
    def inventory(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        config = self.context.config
        return {
            "agents": list(self.context.agent_names),
            "facts": self.context.facts.facts(),
            "classes": self.context.facts.classes(),
            "collectives": [config.collective],
            "main_collective": config.collective,
            "version": _version(),
            "pid": os.getpid(),
            "started": int(_STARTED),
        }

    @action("One fact's value", fact=Input("string", required=True, max_length=256))
    def get_fact(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        facts = self.context.facts.facts()
        if data["fact"] not in facts:
            raise ActionFailed(StatusCode.ABORTED, f"no fact {data['fact']!r} on this node", {"fact": data["fact"], "value": None})
        return {"fact": data["fact"], "value": facts[data["fact"]]}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("drbootstrap")
    except PackageNotFoundError:
        return "unknown"
