"""The node agent: one identity = one STOMP connection answering requests through its agents.

`run_agents(configs)` runs many identities in one process (one connection each), which is how
the 200-agent benchmark and the tests run them. A request is admitted in order of cost: size,
structure, signature, TTL, authorisation, replay, and only then filters; a refusal is one log
line and a count in the stats, never an execution. An unauthorised caller addressing this node
directly gets a signed reply with status 1 (Aborted) so it learns why; actions run on workers.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from drbootstrap.agent.config import REPLAY_STORE, AgentConfig
from drbootstrap.agent.facts import NodeFacts
from drbootstrap.agent.registry import (
    ActionFailed,
    ActionResult,
    AgentContext,
    RpcAgent,
    describe_request,
    load_agents,
    validate_inputs,
)
from drbootstrap.agent.workers import ActionRunner
from drbootstrap.errors import MessagingError, SecurityError
from drbootstrap.messaging.envelope import Reply, Request, StatusCode, WireProtocol
from drbootstrap.messaging.filters import matches
from drbootstrap.messaging.frame_guard import OVERSIZED_HEADER
from drbootstrap.messaging.replay import ReplayCache
from drbootstrap.messaging.security import AuthorizationPolicy, replay_expiry
from drbootstrap.messaging.transport import BrokerAddress, StompTransport, TransportConfig

log = logging.getLogger("drbootstrap.agent")

# Several identities in one process: each connection's thread holds the interpreter well under
# 1 ms per message, then blocks on its socket, so the interpreter's forced switch every 5 ms only
# adds hand-offs between them. With 125 identities a process and 5,000 on 2 cores
# (tests/bench/bench_scale.py) those hand-offs fed on themselves: whole rounds stalled for 20 s.
SHARED_SWITCH_INTERVAL = 0.1


def make_agent_protocol(config: AgentConfig) -> WireProtocol:
    """The wire protocol the agent's config names (messaging.protocols decides, for both ends)."""
    from drbootstrap.messaging.protocols import ProtocolSettings, make_wire_protocol

    if config.protocol == "native" and not config.key_file:
        raise SecurityError("the agent has no key_file: it cannot verify requests", hint="set key_file in the config")
    return make_wire_protocol(ProtocolSettings(
        config.protocol, Path(config.key_file) if config.key_file else None, config.key_id,
        Path(config.trusted_keys_dir) if config.trusted_keys_dir else None,
        config.clock_skew, config.max_message_bytes, config.max_ttl, broker_kind=config.broker_kind,
    ))


class Refused(Exception):
    """A request the agent will not run; `reason` is the stats bucket, the text one log line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AgentServer:
    """Answers requests for one identity. start() returns at once; the connection heals itself."""

    def __init__(self, config: AgentConfig, protocol: WireProtocol | None = None) -> None:
        self.config = config
        self.identity = config.identity
        self.protocol = protocol or make_agent_protocol(config)
        self.policy = AuthorizationPolicy.from_config(config.policy)
        self.facts = NodeFacts(
            config.identity,
            facts_file=config.facts_file,
            classes_file=config.classes_file or f"{config.puppet.vardir}/state/classes.txt",
            role=config.role,
            ip=config.ip,
        )
        context = AgentContext(config, self.facts)
        self.stats = context.stats
        self.agents: dict[str, RpcAgent] = load_agents(context, config.agents)
        self.executed = 0  # actions run (tests prove refused requests never count)
        self.refused = 0
        # Request ids survive a restart in the state dir; without one, requests dated before this
        # start are refused instead (see replay.py and the agent docs for why both exist).
        store = Path(config.state_dir) / REPLAY_STORE if config.state_dir else None
        self.replay = ReplayCache(store=store)
        self.not_before = None if store else math.floor(time.time()) - 1
        self.runner = ActionRunner(config.identity, workers=config.action_workers, pending=config.pending_actions)
        self.transport = StompTransport(
            TransportConfig(
                brokers=[BrokerAddress.parse(b) for b in config.brokers],
                user=config.user,
                password=config.password,
                tls_ca=Path(config.tls_ca) if config.tls_ca else None,
                heartbeat_ms=config.heartbeat_ms,
                max_frame_bytes=config.max_message_bytes,
            ),
            self._on_message,
            name=config.identity,
        )

    def start(self, *, wait: float | None = None) -> None:
        """Subscribe and connect; keep retrying in the background if no broker is up yet."""
        for destination, headers in self.protocol.server_subscriptions(
            self.identity, sorted(self.agents), self.config.collective
        ):
            self.transport.subscribe(destination, headers)
        try:
            self.transport.connect(retry_until=time.monotonic() + wait if wait else None)
        except MessagingError as error:
            log.warning("%s: %s; retrying in the background", self.identity, error)
            self.transport.start_reconnecting()

    def stop(self) -> None:
        self.runner.stop()
        self.transport.close()
        for agent in self.agents.values():
            agent.close()

    # -- request handling ---------------------------------------------------------------------

    def _on_message(self, body: bytes, headers: dict[str, str]) -> None:
        """Cheap checks first: size, structure, signature, TTL, authorisation, replay; then filters."""
        self.stats.total += 1
        try:
            request = self._admit(body, headers)
        except Refused as refusal:
            self.refused += 1
            self.stats.refuse(refusal.reason)
            log.warning("%s: refused a request (%s): %s", self.identity, refusal.reason, refusal)
            return
        if request is None:
            self.stats.filtered += 1
            return
        self.stats.passed += 1
        if request.agent == "discovery":  # a timestamp: answered here, even with every worker busy
            self._answer(request)
        elif not self.runner.submit(lambda: self._answer(request)):
            self.refused += 1
            self.stats.refuse("busy")
            log.warning(
                "%s: refused a request (busy): every worker is taken: %s", self.identity, describe_request(request)
            )
            self._send(_status(self._reply_to(request), StatusCode.ABORTED, "agent busy; try again"), request)

    def _admit(self, body: bytes, headers: dict[str, str]) -> Request | None:
        """The verified request meant for this node, None if it is for others; Refused otherwise."""
        oversized = headers.get(OVERSIZED_HEADER)
        if oversized:
            raise Refused(
                "size", f"a frame of {oversized} bytes exceeds the {self.config.max_message_bytes}-byte limit"
            )
        try:
            request = self.protocol.decode_request(body, headers)
        except SecurityError as error:
            raise Refused("invalid", str(error)) from None
        except Exception as error:  # a decoder bug is still one refusal, not a traceback
            log.debug("decoder failure", exc_info=True)
            raise Refused("invalid", f"undecodable request ({type(error).__name__})") from None
        self.stats.validated += 1
        if self.not_before is not None and request.created_at < self.not_before:
            raise Refused("stale", f"request dated before this agent started: {describe_request(request)}")
        if not self.policy.allows(request.caller_id, request.agent, request.action):
            if self.identity in request.targets and request.reply_wanted:  # addressed to us: say why
                message = f"{request.caller_id} may not call {request.agent}.{request.action}"
                self._send(_status(self._reply_to(request), StatusCode.ABORTED, message), request)
            raise Refused("unauthorised", describe_request(request))
        try:
            self.replay.check_and_remember(
                f"req:{request.request_id}", replay_expiry(request.created_at, request.ttl, self.config.clock_skew)
            )
        except SecurityError as error:
            raise Refused("replay", str(error)) from None
        if request.targets:
            return request if self.identity in request.targets else None
        try:
            return request if self._selected_by(request) else None
        except Exception as error:  # noqa: BLE001 - a filter that cannot be evaluated selects nobody
            raise Refused("invalid", f"filter not evaluable ({type(error).__name__})") from None

    def _selected_by(self, request: Request) -> bool:
        if request.filter.is_empty():
            return True
        return matches(
            request.filter,
            identity=self.identity,
            facts=self.facts.facts(),
            classes=self.facts.classes(),
            agents=self.agents.keys(),
        )

    def _answer(self, request: Request) -> None:
        reply, after_reply = self.run(request)
        if not request.reply_wanted:  # mco --no-results / fire and forget: run, stay silent
            log.debug("%s: no reply wanted for %s", self.identity, describe_request(request))
        else:
            self._send(reply, request)
        if after_reply is not None:
            after_reply()

    def _send(self, reply: Reply, request: Request) -> None:
        try:
            self.transport.send(self.protocol.reply_frame(reply, request), while_subscribing=True)
            self.stats.replies += 1
        except (MessagingError, SecurityError) as error:
            log.warning("%s: could not send the reply to %s: %s", self.identity, describe_request(request), error)

    def _reply_to(self, request: Request) -> Reply:
        return Reply(request.request_id, self.identity, request.agent, request.action, created_at=0.0)

    def handle(self, request: Request) -> Reply:
        """Authorise, validate and run one verified request; the reply only.

        Work an action defers until after its reply (reboot's command) is NOT started here:
        only a request answered over the broker triggers it.
        """
        return self.run(request)[0]

    def run(self, request: Request) -> tuple[Reply, Callable[[], None] | None]:
        """The reply to one verified request and the work to start once that reply has been sent."""
        reply = self._reply_to(request)
        if not self.policy.allows(request.caller_id, request.agent, request.action):
            message = f"{request.caller_id} may not call {request.agent}.{request.action}"
            return _status(reply, StatusCode.ABORTED, message), None
        agent = self.agents.get(request.agent)
        if agent is None:
            return _status(reply, StatusCode.UNKNOWN_ACTION, f"unknown agent {request.agent!r}"), None
        spec = agent.actions().get(request.action)
        if spec is None:
            return _status(reply, StatusCode.UNKNOWN_ACTION, f"unknown action {request.agent}.{request.action}"), None
        try:
            validate_inputs(spec, request.data)
            self.executed += 1
            result = spec.handler(agent, request, request.data)
        except ActionFailed as failure:
            reply.data = failure.data
            return _status(reply, failure.status, failure.message), None
        except Exception as error:  # an agent's bug becomes status 5, not a dead daemon
            log.exception("%s: %s failed", self.identity, describe_request(request))
            return _status(reply, StatusCode.UNKNOWN_ERROR, f"{type(error).__name__}: {error}"), None
        if isinstance(result, ActionResult):
            reply.data = dict(result.data)
            return reply, result.after_reply
        reply.data = dict(result or {})
        return reply, None


def _status(reply: Reply, code: StatusCode, message: str) -> Reply:
    reply.status_code = code
    reply.status_message = message
    return reply


def run_agents(configs: list[AgentConfig], *, wait: float | None = None, parallel: int = 16) -> list[AgentServer]:
    """Start one AgentServer per config in this process (connecting in parallel); the caller stops them."""
    servers = [AgentServer(config) for config in configs]
    if len(servers) > 1:
        sys.setswitchinterval(max(sys.getswitchinterval(), SHARED_SWITCH_INTERVAL))
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(servers)))) as pool:
            list(pool.map(lambda server: server.start(wait=wait), servers))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers
