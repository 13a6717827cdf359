"""The node agent: one identity = one STOMP connection answering requests through its agents.

`run_agents(configs)` runs many identities in one process (one connection each), which is how
the 200-agent benchmark and the tests run them. Refused requests are logged and never executed;
an unauthorised caller gets a signed reply with status 1 (Aborted) so it learns why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from drbootstrap.agent.config import AgentConfig
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
from drbootstrap.errors import MessagingError, SecurityError
from drbootstrap.messaging.envelope import Reply, Request, StatusCode, WireProtocol
from drbootstrap.messaging.filters import matches
from drbootstrap.messaging.security import AuthorizationPolicy
from drbootstrap.messaging.transport import BrokerAddress, StompTransport, TransportConfig

log = logging.getLogger("drbootstrap.agent")


def make_agent_protocol(config: AgentConfig) -> WireProtocol:
    from drbootstrap.messaging.native import NativeProtocol
    from drbootstrap.messaging.security import load_signer

    if config.protocol != "native":  # MCollective 2.12 compat; imported only when asked for
        from drbootstrap.messaging.mcollective import compat_protocol

        return compat_protocol(config.protocol, config.key_file, clock_skew=config.clock_skew,
                               max_message_bytes=config.max_message_bytes)

    if not config.key_file:
        raise SecurityError("the agent has no key_file: it cannot verify requests", hint="set key_file in the config")
    signer = load_signer(
        Path(config.key_file),
        key_id=config.key_id,
        trusted_dir=Path(config.trusted_keys_dir) if config.trusted_keys_dir else None,
    )
    return NativeProtocol(signer, clock_skew=config.clock_skew, max_message_bytes=config.max_message_bytes)


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
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self.transport = StompTransport(
            TransportConfig(
                brokers=[BrokerAddress.parse(b) for b in config.brokers],
                user=config.user,
                password=config.password,
                tls_ca=Path(config.tls_ca) if config.tls_ca else None,
                heartbeat_ms=config.heartbeat_ms,
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
        self.transport.close()
        for agent in self.agents.values():
            agent.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- request handling ---------------------------------------------------------------------

    def _on_message(self, body: bytes, headers: dict[str, str]) -> None:
        self.stats.total += 1
        try:
            request = self.protocol.decode_request(body, headers)
        except SecurityError as error:
            self.refused += 1
            self.stats.unvalidated += 1
            log.warning("%s: refused a request: %s", self.identity, error)
            return
        self.stats.validated += 1
        if request.targets:
            if self.identity not in request.targets:
                self.stats.filtered += 1
                return
        elif not self._selected_by(request):
            self.stats.filtered += 1
            return
        self.stats.passed += 1
        spec = None
        agent = self.agents.get(request.agent)
        if agent is not None:
            spec = agent.actions().get(request.action)
        if spec is not None and spec.slow:
            self._worker_pool().submit(self._answer, request)
        else:
            self._answer(request)

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
            try:
                self.transport.send(self.protocol.reply_frame(reply, request))
                self.stats.replies += 1
            except MessagingError as error:
                log.warning("%s: could not send the reply to %s: %s", self.identity, describe_request(request), error)
        if after_reply is not None:
            after_reply()

    def handle(self, request: Request) -> Reply:
        """Authorise, validate and run one verified request; the reply only.

        Work an action defers until after its reply (reboot's command) is NOT started here:
        only a request answered over the broker triggers it.
        """
        return self.run(request)[0]

    def run(self, request: Request) -> tuple[Reply, Callable[[], None] | None]:
        """The reply to one verified request and the work to start once that reply has been sent."""
        reply = Reply(request.request_id, self.identity, request.agent, request.action, created_at=0.0)
        if not self.policy.allows(request.caller_id, request.agent, request.action):
            self.refused += 1
            log.warning("%s: not authorised: %s", self.identity, describe_request(request))
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
        except Exception as error:  # noqa: BLE001 - an agent's bug becomes status 5, not a dead daemon
            log.exception("%s: %s failed", self.identity, describe_request(request))
            return _status(reply, StatusCode.UNKNOWN_ERROR, f"{type(error).__name__}: {error}"), None
        if isinstance(result, ActionResult):
            reply.data = dict(result.data)
            return reply, result.after_reply
        reply.data = dict(result or {})
        return reply, None

    def _worker_pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"act-{self.identity}")
            return self._executor


def _status(reply: Reply, code: StatusCode, message: str) -> Reply:
    reply.status_code = code
    reply.status_message = message
    return reply


def run_agents(configs: list[AgentConfig], *, wait: float | None = None, parallel: int = 16) -> list[AgentServer]:
    """Start one AgentServer per config in this process (connecting in parallel); the caller stops them."""
    servers = [AgentServer(config) for config in configs]
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(servers)))) as pool:
            list(pool.map(lambda server: server.start(wait=wait), servers))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers
