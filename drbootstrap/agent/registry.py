"""Agents and their actions: the base class, declared inputs, validation, and loading by name.

Built-in agents live in drbootstrap.agent.actions; third-party agents register in the
`drbootstrap.agents` entry-point group (name = "package.module:AgentClass").
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from drbootstrap.errors import DrbError, SpecError
from drbootstrap.messaging.envelope import StatusCode

if TYPE_CHECKING:
    from drbootstrap.agent.config import AgentConfig
    from drbootstrap.agent.facts import NodeFacts
    from drbootstrap.messaging.envelope import Request

log = logging.getLogger("drbootstrap.agent")

ENTRY_POINT_GROUP = "drbootstrap.agents"
BUILTIN_AGENTS = {
    "discovery": "drbootstrap.agent.actions.discovery:DiscoveryAgent",
    "rpcutil": "drbootstrap.agent.actions.rpcutil:RpcutilAgent",
    "reboot": "drbootstrap.agent.actions.reboot:RebootAgent",
    "puppet": "drbootstrap.agent.actions.puppet:PuppetAgent",
    "dns": "drbootstrap.agent.actions.dns:DnsAgent",
    "backup": "drbootstrap.agent.actions.backup:BackupAgent",
    "dumps": "drbootstrap.agent.actions.dumps:DumpsAgent",
    "broker_node": "drbootstrap.agent.actions.broker_node:BrokerNodeAgent",
}
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list,),
    "dict": (dict,),
}


class ActionFailed(DrbError):
    """An action refuses or fails with an mcollective status code (and optional reply data)."""

    def __init__(self, status: StatusCode, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.data = data or {}


@dataclass
class ActionResult:
    """What a handler may return instead of a dict: reply data plus work to do after the reply left."""

    data: dict[str, Any] = field(default_factory=dict)
    after_reply: Callable[[], None] | None = None


@dataclass(frozen=True)
class Input:
    """One declared input of an action; anything undeclared is refused (InvalidData)."""

    type: str = "string"
    required: bool = False
    pattern: str | None = None  # for strings: must match entirely
    max_length: int = 1024
    choices: tuple[Any, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class ActionSpec:
    name: str
    description: str
    inputs: dict[str, Input]
    slow: bool  # runs on a worker thread instead of the receiving thread
    handler: Callable[..., dict[str, Any] | ActionResult | None] = field(compare=False, repr=False)


def action(description: str = "", *, slow: bool = False, **inputs: Input) -> Callable:
    """Mark an agent method as an RPC action: `@action("Run Puppet", slow=True, noop=Input("boolean"))`."""

    def mark(method: Callable) -> Callable:
        method._drb_action = (description, inputs, slow)  # type: ignore[attr-defined]
        return method

    return mark


@dataclass
class ServerStats:
    """mcollectived's RunnerStats counters, kept by the daemon and reported by rpcutil.daemon_stats."""

    starttime: float = field(default_factory=time.time)
    total: int = 0  # messages received
    validated: int = 0  # passed the security checks
    unvalidated: int = 0  # refused by them (size, structure, signature, TTL)
    passed: int = 0  # validated and meant for this node
    filtered: int = 0  # validated but for other nodes
    ttlexpired: int = 0  # mcollective counts these apart; our checks refuse them as unvalidated
    replies: int = 0  # replies published
    refusals: dict[str, int] = field(default_factory=dict)  # reason -> count (size, invalid, replay, ...)

    def refuse(self, reason: str) -> None:
        """Count one refused request; those refused before authorisation are mcollective's unvalidated."""
        self.refusals[reason] = self.refusals.get(reason, 0) + 1
        if reason in ("size", "invalid"):
            self.unvalidated += 1

    def counters(self) -> dict[str, int]:
        return {
            "validated": self.validated, "unvalidated": self.unvalidated, "passed": self.passed,
            "filtered": self.filtered, "starttime": int(self.starttime), "total": self.total,
            "ttlexpired": self.ttlexpired, "replies": self.replies,
        }


@dataclass
class AgentContext:
    """What an agent may use: its node's config, facts and the daemon's counters."""

    config: AgentConfig
    facts: NodeFacts
    agent_names: list[str] = field(default_factory=list)  # filled once every agent is loaded
    stats: ServerStats = field(default_factory=ServerStats)
    agent_classes: dict[str, type[RpcAgent]] = field(default_factory=dict)  # name -> class, for agent_inventory


class RpcAgent:
    """Base of every agent: `name`, a description, and methods marked with @action(...)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, context: AgentContext) -> None:
        self.context = context

    @classmethod
    def actions(cls) -> dict[str, ActionSpec]:
        cached = cls.__dict__.get("_drb_actions")
        if cached is not None:
            return cached
        found: dict[str, ActionSpec] = {}
        for attribute in dir(cls):
            method = getattr(cls, attribute, None)
            marked = getattr(method, "_drb_action", None)
            if method is not None and marked:
                description, inputs, slow = marked
                found[attribute] = ActionSpec(attribute, description, dict(inputs), slow, method)
        cls._drb_actions = found  # type: ignore[attr-defined]
        return found

    def close(self) -> None:
        """Release anything the agent holds (timers, files)."""


def validate_inputs(spec: ActionSpec, data: dict[str, Any]) -> None:
    """Raise ActionFailed(3) for a missing required input, ActionFailed(4) for anything invalid."""
    for name in data:
        if name not in spec.inputs:
            raise ActionFailed(StatusCode.INVALID_DATA, f"unknown input {name!r} for action {spec.name}")
    for name, declared in spec.inputs.items():
        if name not in data or data[name] is None:
            if declared.required:
                raise ActionFailed(StatusCode.MISSING_DATA, f"missing required input {name!r}")
            continue
        value = data[name]
        kinds = _TYPES.get(declared.type, (object,))
        if not isinstance(value, kinds) or (declared.type in ("integer", "number") and isinstance(value, bool)):
            raise ActionFailed(StatusCode.INVALID_DATA, f"input {name!r} must be a {declared.type}")
        if isinstance(value, (str, list, dict)) and len(value) > declared.max_length:
            raise ActionFailed(StatusCode.INVALID_DATA, f"input {name!r} is longer than {declared.max_length}")
        if declared.pattern and isinstance(value, str) and not re.fullmatch(declared.pattern, value):
            raise ActionFailed(StatusCode.INVALID_DATA, f"input {name!r} has an invalid format")
        if declared.choices and value not in declared.choices:
            raise ActionFailed(StatusCode.INVALID_DATA, f"input {name!r} must be one of {list(declared.choices)}")


def available_agents() -> dict[str, str]:
    """Agent name -> "module:Class" for the built-ins and every installed entry point."""
    from importlib.metadata import entry_points

    found = dict(BUILTIN_AGENTS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def load_agent_class(name: str, target: str) -> type[RpcAgent]:
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise SpecError([f"agent {name!r}: cannot load {target} ({error})"]) from error
    if not (isinstance(cls, type) and issubclass(cls, RpcAgent)):
        raise SpecError([f"agent {name!r}: {target} is not an RpcAgent subclass"])
    return cls


def load_agents(context: AgentContext, names: list[str] | None) -> dict[str, RpcAgent]:
    """Instantiate the configured agents (all available when `names` is None; dns and broker_node only
    when configured)."""
    # Only scan installed entry points when a name may need one (importlib.metadata costs RSS).
    builtin_only = names is not None and all(name in BUILTIN_AGENTS for name in names)
    available = dict(BUILTIN_AGENTS) if builtin_only else available_agents()
    if names is None:
        configured = {"dns": context.config.dns is not None, "broker_node": context.config.rabbitmq_dir is not None}
        names = [n for n in available if configured.get(n, True)]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SpecError([f"agent config: unknown agent(s) {unknown} (available: {sorted(available)})"])
    agents = {}
    for name in names:
        cls = load_agent_class(name, available[name])
        agents[cls.name or name] = cls(context)
        context.agent_classes[cls.name or name] = cls
    context.agent_names = sorted(agents)
    return agents


def describe_request(request: Request) -> str:
    """For logs: who asked for what, never the data (it may hold secrets)."""
    return f"{request.caller_id} {request.agent}.{request.action} id={request.request_id}"
