"""The one place STOMP destinations are named, for each wire protocol on each broker kind.

The broker kinds read the same STOMP destinations differently:

ActiveMQ: /topic/X is a topic (every subscriber gets a copy); /queue/X a queue kept until consumed,
from which each agent takes its own directed requests with a selector on the identity header.

RabbitMQ (rabbitmq_stomp): /topic/X goes through amq.topic with routing key X; /queue/X is a named
queue declared on SEND or SUBSCRIBE (durable, kept until deleted); /amq/queue/X sends to an existing
queue only (dropped when there is none); /exchange/E/K publishes to exchange E with key K. Selectors
do not exist, so each agent has its own directed queue. A client's reply queue is auto-deleted when
it unsubscribes and agents reply through /amq/queue/, so a client gone leaves no queue behind.
MCollective's own RabbitMQ connector (connector/rabbitmq.rb) sends broadcast requests to
/exchange/<collective>_broadcast/<agent>, directed ones to /exchange/<collective>_directed/<identity>
(topic exchanges the broker declares at start) and asks for replies on /temp-queue/..., which the
broker rewrites to /reply-queue/... in the reply-to header.

Names reaching here were checked by the protocol (plain letters, digits, dot, dash, underscore).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drbootstrap.errors import MessagingError

BROKER_KINDS = ("activemq", "rabbitmq")
NATIVE_PREFIX = "drb."
SELECTOR_HEADERS = {"native": "drb_identity", "mcollective": "mc_identity"}
_REPLY_QUEUE = {"auto-delete": "true", "durable": "false"}  # RabbitMQ: gone with its subscriber
_QUEUE_OR_TOPIC = re.compile(r"^/(queue|topic)/[A-Za-z0-9_.\-]{1,240}$")
# MCollective on RabbitMQ: reply queues as the broker rewrites /temp-queue/ (/reply-queue/...), or its
# use_reply_exchange mode's exchange; never another exchange (sending to a missing one closes the
# connection), and the reply-to is not covered by the psk.
_MCO_REPLY = re.compile(r"^/(queue|topic|amq/queue|reply-queue|exchange/mcollective_reply)/[A-Za-z0-9_.\-]{1,240}$")

Subscription = tuple[str, dict[str, str]]


def check_broker_kind(kind: str) -> str:
    if kind not in BROKER_KINDS:
        raise MessagingError(f"unknown broker kind {kind!r}", hint="set broker_kind to activemq or rabbitmq")
    return kind


@dataclass(frozen=True)
class Destinations:
    """STOMP destinations of STYLE (native | mcollective) on a broker of KIND (activemq | rabbitmq)."""

    style: str = "native"
    kind: str = "activemq"

    def __post_init__(self) -> None:
        check_broker_kind(self.kind)
        if self.style not in SELECTOR_HEADERS:
            raise MessagingError(f"unknown destination style {self.style!r}")

    @property
    def _prefix(self) -> str:
        return NATIVE_PREFIX if self.style == "native" else ""

    @property
    def identity_header(self) -> str:
        return SELECTOR_HEADERS[self.style]

    @property
    def _mco_rabbit(self) -> bool:
        return self.style == "mcollective" and self.kind == "rabbitmq"

    def broadcast(self, agent: str, collective: str) -> str:
        if self._mco_rabbit:
            return f"/exchange/{collective}_broadcast/{agent}"
        return f"/topic/{self._prefix}{collective}.{agent}.agent"

    def direct(self, identity: str, collective: str) -> tuple[str, dict[str, str]]:
        """Where a request for IDENTITY alone goes, and the headers that select it there."""
        selecting = {self.identity_header: identity}  # on RabbitMQ, only ever seen by IDENTITY
        if self._mco_rabbit:
            return f"/exchange/{collective}_directed/{identity}", selecting
        if self.kind == "rabbitmq":
            return f"/queue/{self._prefix}{collective}.node.{identity}", selecting
        return f"/queue/{self._prefix}{collective}.nodes", selecting

    def direct_subscription(self, identity: str, collective: str) -> Subscription:
        """What an agent subscribes to for the requests addressed to it alone."""
        if self.kind == "rabbitmq":
            return self.direct(identity, collective)[0], {}
        return f"/queue/{self._prefix}{collective}.nodes", {"selector": f"{self.identity_header} = '{identity}'"}

    def server_subscriptions(self, identity: str, agents: list[str], collective: str) -> list[Subscription]:
        return [(self.broadcast(agent, collective), {}) for agent in agents] + [
            self.direct_subscription(identity, collective)]

    def _reply_queue(self, client_id: str, collective: str) -> str:
        return f"{self._prefix}{collective}.reply.{client_id}"

    def reply(self, client_id: str, collective: str) -> str:
        """The reply-to a client's requests carry."""
        if self.kind == "rabbitmq":
            return f"/amq/queue/{self._reply_queue(client_id, collective)}"
        return f"/queue/{self._reply_queue(client_id, collective)}"

    def reply_endpoints(self, client_id: str, collective: str) -> tuple[str, Subscription]:
        """(the reply-to a client's requests carry, what the client subscribes to for them)."""
        return self.reply(client_id, collective), self.reply_subscription(client_id, collective)

    def reply_subscription(self, client_id: str, collective: str) -> Subscription:
        """What the client subscribes to for its replies."""
        if self.kind == "rabbitmq":
            return f"/queue/{self._reply_queue(client_id, collective)}", dict(_REPLY_QUEUE)
        return f"/queue/{self._reply_queue(client_id, collective)}", {}

    def reply_allowed(self, reply_to: str, collective: str) -> bool:
        """Whether an agent may send a reply to REPLY_TO (a request names it; only reply queues)."""
        if self.style == "mcollective":  # mco names its own (per call; on RabbitMQ, rewritten by the broker)
            return bool((_MCO_REPLY if self.kind == "rabbitmq" else _QUEUE_OR_TOPIC).match(reply_to))
        own = self.reply("x", collective).removesuffix("x")
        return reply_to.startswith(own) and len(reply_to) > len(own)
