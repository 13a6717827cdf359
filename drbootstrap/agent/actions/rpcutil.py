"""The rpcutil agent: mcollective's ping, inventory, daemon_stats, agent_inventory and fact/config lookups.

Reply shapes follow MCollective 2.12's agent/rpcutil.rb, so `mco inventory` and `mco rpc rpcutil`
render our agents exactly as they render mcollectived.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from typing import Any

from drbootstrap.agent.registry import ActionFailed, Input, RpcAgent, action
from drbootstrap.messaging.envelope import Request, StatusCode

_STARTED = time.time()
ACTION_TIMEOUT = 60  # what agent_inventory reports as each agent's timeout (mcollective's default)
# get_config_item answers only these: the config also holds a password and key paths.
PUBLIC_CONFIG_ITEMS = ("identity", "main_collective", "collectives", "protocol", "role", "agents")


class RpcutilAgent(RpcAgent):
    name = "rpcutil"
    description = "General helpers: ping, inventory, daemon statistics, facts and config items."

    @action("Reply pong with the node's clock")
    def ping(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        return {"pong": int(time.time())}

    @action("The node's agents, facts, classes, collectives and agent version")
    def inventory(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        config = self.context.config
        return {
            "agents": list(self.context.agent_names),
            "facts": self.context.facts.facts(),
            "classes": self.context.facts.classes(),
            "collectives": [config.collective],
            "main_collective": config.collective,
            "data_plugins": [],  # mcollective data plugins; drbootstrap has none
            "version": _version(),
            "pid": os.getpid(),
            "started": int(_STARTED),
        }

    @action("The daemon's message counters, threads, CPU times and version")
    def daemon_stats(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        times = os.times()
        return {
            "threads": [repr(thread) for thread in threading.enumerate()],
            "agents": list(self.context.agent_names),
            "pid": os.getpid(),
            "times": {"utime": times.user, "stime": times.system, "cutime": times.children_user,
                      "cstime": times.children_system},
            "configfile": "",  # an agent may run from several files or none (run_agents)
            "version": _version(),
            **self.context.stats.counters(),
            "refusals": dict(self.context.stats.refusals),  # drbootstrap's own: reason -> count
        }

    @action("Every agent on the node with its metadata")
    def agent_inventory(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        agents = []
        for name in sorted(self.context.agent_classes):
            cls = self.context.agent_classes[name]
            agents.append({
                "agent": name, "license": "unknown", "timeout": ACTION_TIMEOUT,
                "description": cls.description or "unknown", "name": name, "url": "unknown",
                "version": _version(), "author": "drbootstrap",
            })
        return {"agents": agents}

    @action("The collectives this node belongs to")
    def collective_info(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        collective = self.context.config.collective
        return {"main_collective": collective, "collectives": [collective]}

    @action("One fact's value", fact=Input("string", required=True, max_length=256))
    def get_fact(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        facts = self.context.facts.facts()
        if data["fact"] not in facts:
            raise ActionFailed(
                StatusCode.ABORTED, f"no fact {data['fact']!r} on this node", {"fact": data["fact"], "value": None}
            )
        return {"fact": data["fact"], "value": facts[data["fact"]]}

    @action("Several facts' values (nil for unknown ones)", facts=Input("string", required=True, max_length=4096))
    def get_facts(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        facts = self.context.facts.facts()
        names = [name.strip() for name in data["facts"].split(",") if name.strip()]
        return {"values": {name: facts.get(name) for name in names}}

    @action("One public config setting", item=Input("string", required=True, max_length=256))
    def get_config_item(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        item = data["item"]
        if item not in PUBLIC_CONFIG_ITEMS:
            raise ActionFailed(StatusCode.ABORTED, f"Unknown config property {item}")
        config = self.context.config
        values = {
            "identity": config.identity,
            "main_collective": config.collective,
            "collectives": [config.collective],
            "protocol": config.protocol,
            "role": config.role or "",
            "agents": list(self.context.agent_names),
        }
        return {"item": item, "value": values[item]}


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("drbootstrap")
    except PackageNotFoundError:
        return "unknown"
