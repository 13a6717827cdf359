"""The protocol-neutral message model: a request, a reply, a filter, and a wire protocol's shape.

Both wire protocols (drbootstrap's signed JSON, and MCollective 2.12's Ruby Marshal + psk) turn
these dataclasses into STOMP frames and back; the transport, client and agent see only these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class StatusCode(IntEnum):
    """mcollective's reply status codes."""

    OK = 0
    ABORTED = 1
    UNKNOWN_ACTION = 2
    MISSING_DATA = 3
    INVALID_DATA = 4
    UNKNOWN_ERROR = 5


@dataclass(frozen=True)
class FactFilter:
    """`-F fact OP value`; OP is one of == != =~ < > <= >= (mco's meanings)."""

    fact: str
    operator: str
    value: str


@dataclass(frozen=True)
class Filter:
    """Which nodes a request is for. Empty lists match everything (mco semantics)."""

    identity: tuple[str, ...] = ()  # exact names or /regex/
    fact: tuple[FactFilter, ...] = ()
    cf_class: tuple[str, ...] = ()  # Puppet classes, exact or /regex/
    agent: tuple[str, ...] = ()  # agents the node must have, exact or /regex/

    def is_empty(self) -> bool:
        return not (self.identity or self.fact or self.cf_class or self.agent)


@dataclass
class Request:
    """One RPC call as the client issues it and an agent receives it."""

    request_id: str  # unique; a receiver refuses one it has seen before
    sender_id: str  # the client's identity (where replies go is reply_to)
    caller_id: str  # who is asking, for authorisation: "uid=0", "user=ops", "key=<name>"
    agent: str
    action: str
    data: dict[str, Any] = field(default_factory=dict)
    filter: Filter = field(default_factory=Filter)
    collective: str = "mcollective"
    ttl: int = 60  # seconds the request stays valid after created_at
    created_at: float = 0.0  # unix time the client made it (mcollective's msgtime)
    reply_to: str = ""  # STOMP destination for replies
    targets: tuple[str, ...] = ()  # direct addressing: only these identities; () = broadcast
    reply_wanted: bool = True  # False: run the action, publish no reply (mco's process_results => false)


@dataclass
class Reply:
    """One node's answer to a request."""

    request_id: str
    sender_id: str  # the answering node's identity
    agent: str
    action: str = ""
    status_code: StatusCode = StatusCode.OK
    status_message: str = "OK"
    data: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass(frozen=True)
class Frame:
    """What goes over STOMP: a destination, headers and a body."""

    destination: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class WireProtocol(ABC):
    """One way of putting requests and replies on the broker (native JSON, MCollective 2.12).

    decode_* verify (size, bounded structure, signature, TTL both ways) and raise SecurityError
    on refusal; decode_reply also refuses a replayed reply. A request's replay check is the
    receiving agent's, after authorisation (agent/daemon.py), so nobody unauthorised fills it.
    """

    name: str

    @abstractmethod
    def request_frames(self, request: Request) -> list[Frame]:
        """Frames that carry `request`: a broadcast topic per agent, or direct-addressed queue."""

    @abstractmethod
    def decode_request(self, body: bytes, headers: dict[str, str]) -> Request: ...

    @abstractmethod
    def reply_frame(self, reply: Reply, request: Request) -> Frame: ...

    @abstractmethod
    def decode_reply(self, body: bytes, headers: dict[str, str]) -> Reply: ...

    @abstractmethod
    def server_subscriptions(
        self, identity: str, agents: list[str], collective: str
    ) -> list[tuple[str, dict[str, str]]]:
        """(destination, extra subscribe headers such as a selector) a node agent listens on."""

    @abstractmethod
    def reply_destination(self, client_identity: str, collective: str) -> str:
        """The reply-to of a client's requests."""

    def reply_endpoints(self, client_identity: str, collective: str) -> tuple[str, tuple[str, dict[str, str]]]:
        """(the reply-to of a client's requests, the (destination, headers) it subscribes to for
        the replies): the same queue on ActiveMQ, not on RabbitMQ (messaging.naming)."""
        reply_to = self.reply_destination(client_identity, collective)
        return reply_to, (reply_to, {})
