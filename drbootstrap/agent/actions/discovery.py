"""The discovery agent: answers `ping` with `pong` (what `drbootstrap ping` and discovery use)."""

from __future__ import annotations

import time
from typing import Any

from drbootstrap.agent.registry import RpcAgent, action
from drbootstrap.messaging.envelope import Request


class DiscoveryAgent(RpcAgent):
    name = "discovery"
    description = "Discovery: answers ping so clients find nodes matching a filter."

    @action("Reply pong with the node's clock")
    def ping(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        return {"pong": int(time.time())}
