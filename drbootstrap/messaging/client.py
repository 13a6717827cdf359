"""The RPC client: discovery, broadcast or direct calls, batching, and the reply summary.

Discovery ends the moment every expected identity has answered, waiting at most
`discovery_timeout` s plus 1 s per 1,000 expected identities; without an expectation it
uses a sliding window (stop after `discovery_window` s with no new reply, at most
`discovery_timeout` s). Replies flow listener -> queue -> the waiting caller, no sleeps.
With several brokers (a cluster), a ping with expected identities (and no fact, class or agent
filter) asks the silent ones again, directly, once replies stop coming for `reask_after` s or the
client reconnected: a broker node that died took the broadcast with it for the agents connected
to it, and their directed queues (mirrored in a cluster) keep the question until they are back.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from drbootstrap.errors import MessagingError, SecurityError
from drbootstrap.messaging.envelope import Filter, Reply, Request, WireProtocol
from drbootstrap.messaging.transport import BrokerAddress, StompTransport, TransportConfig

log = logging.getLogger("drbootstrap.client")


@dataclass
class ClientConfig:
    brokers: list[str]
    key_file: Path | None = None
    key_id: str | None = None
    trusted_keys_dir: Path | None = None
    identity: str = "drbootstrap"
    collective: str = "mcollective"
    tls_ca: Path | None = None
    tls_server_name: str | None = None  # check the broker's certificate for this name (transport.py)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    discovery_timeout: float = 2.0  # longest discovery may take
    discovery_window: float = 0.3  # no expectation: stop after this long without a new reply
    timeout: float = 60.0  # longest to wait for replies to an action
    ttl: int = 60
    clock_skew: float = 30.0
    max_message_bytes: int = 256 * 1024
    connect_timeout: float = 10.0
    protocol: str = "native"  # or "mcollective": MCollective 2.12 compat, key_file holds plugin.psk
    broker_kind: str = "activemq"  # or "rabbitmq": which STOMP destinations (messaging.naming)
    reask_after: float = 0.5  # several brokers, ping with expected identities: re-ask the silent after this idle time


# With expected identities, discovery may take `discovery_timeout` plus this long per identity: the
# round ends as soon as all have answered, so the extra time is spent only on nodes that stay
# silent; without it a 5,000-node ping on the 2 s default ended before the fleet had answered.
WAIT_PER_EXPECTED = 0.001


def discovery_wait(discovery_timeout: float, expected: int) -> float:
    """The longest a discovery round waits: the configured timeout, and 1 s more per 1,000 expected."""
    return discovery_timeout + expected * WAIT_PER_EXPECTED


@dataclass
class RpcResult:
    """Every reply to one logical call, who was asked, and who stayed silent."""

    agent: str
    action: str
    replies: list[Reply]
    asked: list[str]  # identities discovered, targeted or expected
    elapsed_ms: float
    latency_ms: dict[str, float] = field(default_factory=dict)  # identity -> reply arrival time
    requests_sent: int = 1  # one per batch

    @property
    def responded(self) -> list[str]:
        return [reply.sender_id for reply in self.replies]

    @property
    def no_response(self) -> list[str]:
        answered = set(self.responded)
        return sorted(name for name in self.asked if name not in answered)

    @property
    def ok(self) -> bool:
        return not self.no_response and all(reply.status_code == 0 for reply in self.replies)

    def summary(self) -> str:
        total = len(set(self.asked) | set(self.responded))
        return f"Finished processing {len(self.replies)} / {total} hosts in {self.elapsed_ms:.0f} ms"


def make_protocol(config: ClientConfig) -> WireProtocol:
    """The wire protocol the client's config names (messaging.protocols decides, for both ends)."""
    from drbootstrap.messaging.protocols import ProtocolSettings, make_wire_protocol

    return make_wire_protocol(ProtocolSettings(
        config.protocol, Path(config.key_file) if config.key_file else None, config.key_id,
        Path(config.trusted_keys_dir) if config.trusted_keys_dir else None,
        config.clock_skew, config.max_message_bytes, broker_kind=config.broker_kind,
    ))


class RpcClient:
    """Use as a context manager: `with RpcClient(config) as client: client.ping()`."""

    def __init__(self, config: ClientConfig, protocol: WireProtocol | None = None) -> None:
        self.config = config
        self.protocol = protocol or make_protocol(config)
        self.client_id = f"{config.identity}_{os.getpid()}_{secrets.token_hex(3)}"
        self.reply_to, self._reply_subscription = self.protocol.reply_endpoints(self.client_id, config.collective)
        self._reply_generation = 0
        self.refused = 0
        self._replies: queue.Queue[tuple[Reply, float]] = queue.Queue()
        self._outstanding: set[str] = set()
        self.transport = StompTransport(
            TransportConfig(
                brokers=[BrokerAddress.parse(b) for b in config.brokers],
                user=config.user,
                password=config.password,
                tls_ca=config.tls_ca,
                tls_server_name=config.tls_server_name,
                connect_timeout=config.connect_timeout,
                max_frame_bytes=config.max_message_bytes,
                confirm_subscriptions=True,  # its reply queue must exist before it asks anything
            ),
            self._on_message,
            name=self.client_id,
        )
        if config.broker_kind == "rabbitmq" and len(config.brokers) > 1:  # a cluster (see _new_reply_queue)
            self.transport.before_reconnect = self._new_reply_queue

    def _new_reply_queue(self) -> None:
        """Reconnecting to a RabbitMQ cluster: replies go to a new queue of ours, as the old one may
        still be held for the node that died, which refuses a new subscription to it as locked.
        Replies on their way to the old one are lost: a ping with expected identities asks again."""
        self._reply_generation += 1
        old = self._reply_subscription[0]
        self.reply_to, self._reply_subscription = self.protocol.reply_endpoints(
            f"{self.client_id}_{self._reply_generation}", self.config.collective)
        self.transport.replace_subscription(old, *self._reply_subscription)
    def __enter__(self) -> RpcClient:
        self.transport.subscribe(*self._reply_subscription)
        self.transport.connect(retry_until=time.monotonic() + self.config.connect_timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        self.transport.close()

    # -- public calls -------------------------------------------------------------------------

    def ping(self, filter_: Filter = Filter(), expect: Iterable[str] = ()) -> RpcResult:
        """Broadcast discovery ping; each reply's latency is recorded."""
        expected = list(expect)
        request = self._request("discovery", "ping", {}, filter_)
        # Only with several brokers (a cluster, where one dying loses its agents the broadcast), and
        # without fact, class or agent filters: a node asked directly answers whatever it is, so
        # an expected node the filters leave out must stay silent.
        reask = (bool(expected) and len(self.config.brokers) > 1
                 and not (filter_.fact or filter_.cf_class or filter_.agent))
        replies, latency, elapsed = self._round_trip(request, set(expected) or None,
                                                     discovery_wait(self.config.discovery_timeout, len(set(expected))),
                                                     reask=reask)
        return RpcResult("discovery", "ping", replies, expected, elapsed, latency)

    def discover(self, filter_: Filter = Filter(), expect: Iterable[str] = ()) -> list[str]:
        """Identities of the nodes that match `filter_` (ends early once all expected answered)."""
        return sorted(self.ping(filter_, expect).responded)

    def call(
        self,
        agent: str,
        action: str,
        data: dict[str, Any] | None = None,
        *,
        filter_: Filter = Filter(),
        targets: Iterable[str] = (),
        expect: Iterable[str] = (),
        batch_size: int = 0,
        batch_sleep: float = 0.0,
        timeout: float | None = None,
    ) -> RpcResult:
        """Run agent.action on `targets` (direct), else on the nodes discovery finds for the filter.

        Each batch is sent direct to its nodes and waits until all of them replied or `timeout`.
        """
        started = time.monotonic()
        expected = list(expect)
        nodes = list(dict.fromkeys(targets))
        if not nodes:
            nodes = self.discover(filter_, expected)
        asked = sorted(set(nodes) | set(expected))
        replies: list[Reply] = []
        latency: dict[str, float] = {}
        size = batch_size if batch_size > 0 else max(len(nodes), 1)
        batches = 0
        for index in range(0, len(nodes), size):
            batches += 1
            if index and batch_sleep > 0:
                time.sleep(batch_sleep)
            chunk = nodes[index : index + size]
            request = self._request(agent, action, data or {}, filter_, targets=chunk)
            got, lat, _ = self._round_trip(request, set(chunk), timeout or self.config.timeout, window=False)
            replies.extend(got)
            latency.update(lat)
        return RpcResult(agent, action, replies, asked, (time.monotonic() - started) * 1000, latency, batches)

    # -- internals ----------------------------------------------------------------------------

    def _request(
        self, agent: str, action: str, data: dict[str, Any], filter_: Filter, *, targets: Iterable[str] = ()
    ) -> Request:
        return Request(
            request_id=uuid.uuid4().hex,
            sender_id=self.client_id,
            caller_id="",
            agent=agent,
            action=action,
            data=data,
            filter=filter_,
            collective=self.config.collective,
            ttl=self.config.ttl,
            created_at=time.time(),
            reply_to=self.reply_to,
            targets=tuple(targets),
        )

    def _round_trip(
        self, request: Request, expected: set[str] | None, timeout: float, *, window: bool = True,
        reask: bool = False,
    ) -> tuple[list[Reply], dict[str, float], float]:
        """Send REQUEST and collect its replies. REASK (idempotent requests only): the silent
        expected identities are asked again, each time under a new request id."""
        request_ids = {request.request_id}
        self._outstanding.add(request.request_id)
        try:
            started = time.monotonic()
            self._send(request)
            again = _Reasker(self, request, request_ids) if reask and self.config.reask_after > 0 else None
            replies = self._collect(request_ids, expected, started, timeout, window, again)
        finally:
            self._outstanding.difference_update(request_ids)
        latency = {reply.sender_id: (arrived - started) * 1000 for reply, arrived in replies}
        return [reply for reply, _ in replies], latency, (time.monotonic() - started) * 1000

    def _send(self, request: Request) -> None:
        """Send REQUEST's frames; a connection lost meanwhile (its broker died) is waited for, up
        to connect_timeout, while the transport fails over to another broker."""
        for frame in self.protocol.request_frames(request):
            try:
                self.transport.send(frame)
            except MessagingError:
                if not self.transport.connected.wait(self.config.connect_timeout):
                    raise
                self.transport.send(frame)

    def _collect(
        self, request_ids: set[str], expected: set[str] | None, started: float, timeout: float, window: bool,
        reask: _Reasker | None = None,
    ) -> list[tuple[Reply, float]]:
        deadline = started + timeout
        idle = self.config.discovery_window if (window and not expected) else None
        got: dict[str, tuple[Reply, float]] = {}
        last = started
        while True:
            if expected and expected <= got.keys():
                break
            now = time.monotonic()
            remaining = deadline - now
            if idle is not None:
                remaining = min(remaining, last + idle - now)
            if remaining <= 0:
                break
            if reask is not None and expected:
                remaining = min(remaining, reask.due(last, expected - got.keys()))
            try:
                reply, arrived = self._replies.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                continue
            if reply.request_id not in request_ids or reply.sender_id in got:
                continue  # a straggler from an earlier call, or a duplicate
            got[reply.sender_id] = (reply, arrived)
            last = arrived
        return list(got.values())

    def _on_message(self, body: bytes, headers: dict[str, str]) -> None:
        arrived = time.monotonic()
        try:
            reply = self.protocol.decode_reply(body, headers)
        except SecurityError as error:
            self.refused += 1
            log.warning("refused a reply on %s: %s", self.reply_to, error)
            return
        if reply.request_id in self._outstanding:
            self._replies.put((reply, arrived))


class _Reasker:
    """Asks the silent expected identities again, directly (their directed queues keep the request
    while they reconnect), when replies have stopped for `reask_after` s (doubling each time) or
    the client's own connection was remade since the last ask."""

    def __init__(self, client: RpcClient, request: Request, request_ids: set[str]) -> None:
        self.client, self.request, self.request_ids = client, request, request_ids
        self.wait = client.config.reask_after
        self.asked_at = time.monotonic()
        self.reconnects = client.transport.reconnects
        self.times = 0

    def due(self, last_reply: float, silent: set[str]) -> float:
        """Seconds until the next re-ask (asking now when it is due)."""
        now = time.monotonic()
        quiet_since = max(last_reply, self.asked_at)
        reconnected = self.client.transport.reconnects != self.reconnects
        if not reconnected and now < quiet_since + self.wait:
            return quiet_since + self.wait - now
        if not self.client.transport.connected.is_set():
            return 0.05  # reconnecting: ask once connected again
        again = replace(self.request, request_id=uuid.uuid4().hex, created_at=time.time(),
                        targets=tuple(sorted(silent)), reply_to=self.client.reply_to)
        self.request_ids.add(again.request_id)
        self.client._outstanding.add(again.request_id)
        try:
            self.client._send(again)
        except MessagingError as error:  # the connection dropped meanwhile: try again once it is back
            log.warning("re-asking %d silent node(s) failed: %s", len(silent), error)
            return 0.05
        self.times += 1
        log.info("asked %d silent node(s) again (%s)", len(silent), "after a reconnect" if reconnected else "no reply")
        self.asked_at, self.reconnects = time.monotonic(), self.client.transport.reconnects
        self.wait *= 2
        return self.wait


def require_replies(result: RpcResult) -> None:
    """Raise MessagingError when nobody answered at all."""
    if not result.replies:
        raise MessagingError(
            f"no node answered {result.agent}.{result.action}",
            hint="check the broker address, the key, the filters and that the agents run",
        )
