"""One STOMP connection over stomp.py's core: broker failover list, optional TLS, reconnect with backoff.

With several brokers (a cluster's nodes) each connection starts at a random one and tries the
others in turn; after a loss it reconnects to the first that answers.

Incoming frames go straight to a callback (no polling); subscriptions are replayed after every
reconnect, so a broker restart only costs the time until it listens again; a connection counts as
up once the broker has receipted its subscriptions (RabbitMQ declares a queue on SUBSCRIBE).
A connection the broker answers with an ERROR before that receipt is closed and made again (its
subscriptions may not exist: it would send requests whose replies go nowhere); so is one whose
receipt does not come within connect_timeout, for a client (confirm_subscriptions).
With max_frame_bytes, an oversized frame is skipped in the receive path and arrives as an empty
frame marked frame_guard.OVERSIZED_HEADER.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from drbootstrap.errors import MessagingError
from drbootstrap.messaging.envelope import Frame
from drbootstrap.messaging.frame_guard import FrameGuard
from drbootstrap.messaging.stomp_core import (
    ConnectFailedException,
    ConnectionListener,
    NotConnectedException,
    StompConnection12,
    StompException,
)

log = logging.getLogger("drbootstrap.transport")

MessageHandler = Callable[[bytes, dict[str, str]], None]

# How long the broker may stay silent, in its heart-beat intervals, before the connection counts as
# dead. With stomp.py's default 1.5, ActiveMQ holding 5,000 agents (tests/bench/bench_scale.py)
# saw its live connections dropped after 45 s without a keep-alive, then a reconnect storm: a
# busy broker's keep-alives arrive late. A broker that dies closes the socket and is noticed at
# once; this bounds only a hung one.
HEARTBEAT_RECEIVE_SCALE = 2.5


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False

    @classmethod
    def parse(cls, text: str) -> BrokerAddress:
        """`stomp://host:port`, `stomp+ssl://host:port` or `host:port`."""
        url = urlparse(text if "://" in text else f"stomp://{text}")
        if url.scheme not in ("stomp", "stomp+ssl", "stomp+tls", "ssl") or not url.hostname:
            raise MessagingError(f"bad broker address {text!r}", hint="use stomp://HOST:PORT or stomp+ssl://HOST:PORT")
        try:
            port = url.port or (61614 if url.scheme != "stomp" else 61613)
        except ValueError as error:
            raise MessagingError(f"bad port in broker address {text!r}", hint="use stomp://HOST:PORT") from error
        return cls(url.hostname, port, url.scheme != "stomp")

    def __str__(self) -> str:
        return f"{'stomp+ssl' if self.tls else 'stomp'}://{self.host}:{self.port}"


@dataclass
class TransportConfig:
    brokers: list[BrokerAddress]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: Path | None = None  # CA (or self-signed cert) that must have signed the broker's cert
    # Check the broker's certificate for this name, not for the address dialed (stomp.py's check);
    # tls_ca then also holds the issuing CA (messaging.broker_ca.certificate_problem).
    tls_server_name: str | None = None
    heartbeat_ms: int = 30_000  # idle traffic both ways; also how dead peers are noticed
    connect_timeout: float = 5.0
    backoff_initial: float = 0.2
    backoff_max: float = 2.0  # keeps a broker restart to a couple of seconds of silence
    max_frame_bytes: int | None = None  # larger frames are read past, never buffered (frame_guard)
    # No receipt for the subscriptions within connect_timeout: True, the connection is closed and
    # made again (a client: one connection that waits for replies); False, it is kept with a warning
    # (an agent: thousands reconnecting at once would load a slow broker further, and a cluster's
    # receipt waits for a mirror's promotion).
    confirm_subscriptions: bool = False


class _Unconfirmed(MessagingError):
    """A connection was made but its subscriptions were refused or not receipted: made again."""


class StompTransport:
    """A connection that keeps itself connected once started (until close())."""

    def __init__(self, config: TransportConfig, on_message: MessageHandler, *, name: str = "drbootstrap") -> None:
        if not config.brokers:
            raise MessagingError(
                "no broker configured", hint="pass --broker stomp://HOST:PORT or set brokers in the config"
            )
        self.config = config
        self.on_message = on_message
        self.name = name
        self.subscriptions: list[tuple[str, dict[str, str]]] = []
        self.connected = threading.Event()
        self.reconnects = 0
        self._connection: StompConnection12 | None = None
        self._closing = False
        self._lock = threading.Lock()
        self._reconnect_thread: threading.Thread | None = None
        self._receipts: dict[str, threading.Event] = {}
        # Called before each reconnection attempt: a client moves to a new reply queue there.
        self.before_reconnect: Callable[[], None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def connect(self, *, retry_until: float | None = None) -> None:
        """Connect to the first broker that answers; retry with backoff until `retry_until` (monotonic)."""
        delay = self.config.backoff_initial
        second_chance = True  # a broker that answered but fumbled the subscriptions gets one more try
        while True:
            try:
                self._connect_once()
                return
            except _Unconfirmed:
                late = retry_until is None or time.monotonic() + delay > retry_until
                if self._closing or (late and not second_chance):
                    raise
                second_chance = second_chance and not late
            except MessagingError:
                if self._closing or retry_until is None or time.monotonic() + delay > retry_until:
                    raise
            time.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.config.backoff_max)

    def start_reconnecting(self) -> None:
        """Keep trying to connect in the background (a daemon whose broker is not up yet)."""
        with self._lock:
            if self._closing or (self._reconnect_thread is not None and self._reconnect_thread.is_alive()):
                return
            self._reconnect_thread = threading.Thread(
                target=self._reconnect_forever, name=f"reconnect-{self.name}", daemon=True
            )
            self._reconnect_thread.start()

    def close(self) -> None:
        self._closing = True
        connection = self._connection
        self._connection = None
        self.connected.clear()
        if connection is not None:
            _disconnect(connection)

    def replace_subscription(self, old: str, destination: str, headers: dict[str, str]) -> None:
        """Subscribe to DESTINATION instead of OLD from the next (re)connection on."""
        with self._lock:
            self.subscriptions = [(destination, dict(headers)) if entry[0] == old else entry
                                  for entry in self.subscriptions]

    def subscribe(self, destination: str, headers: dict[str, str] | None = None) -> None:
        """Subscribe now and again after every reconnect."""
        entry = (destination, dict(headers or {}))
        self.subscriptions.append(entry)
        if self._connection is not None and self.connected.is_set():
            self._subscribe(self._connection, len(self.subscriptions), entry)

    def send(self, frame: Frame, *, while_subscribing: bool = False) -> None:
        """Send FRAME once connected and subscribed; WHILE_SUBSCRIBING: as soon as the connection
        is made (an agent's reply to a request its queue kept while it reconnected)."""
        connection = self._connection
        if connection is None or not (self.connected.is_set() or while_subscribing):
            raise MessagingError(f"not connected to a broker ({self._broker_list()})", hint="is the broker running?")
        try:
            connection.send(frame.destination, frame.body, headers=dict(frame.headers))
        except (NotConnectedException, StompException, OSError) as error:
            raise MessagingError(f"send to {frame.destination} failed: {error}", hint="the broker went away") from error

    # -- internals ----------------------------------------------------------------------------

    def _connect_once(self) -> None:
        # Several brokers (a cluster): start the list at a random one, so that a fleet spreads
        # over the nodes and those of a node that died spread over the others.
        start = random.randrange(len(self.config.brokers))
        hosts = [(b.host, b.port) for b in self.config.brokers[start:] + self.config.brokers[:start]]
        heartbeat = self.config.heartbeat_ms
        connection = StompConnection12(
            host_and_ports=hosts,
            heartbeats=(heartbeat, heartbeat),
            heart_beat_receive_scale=HEARTBEAT_RECEIVE_SCALE,
            reconnect_attempts_max=1,
            timeout=self.config.connect_timeout,
            auto_decode=False,
            prefer_localhost=False,
            try_loopback_connect=False,
            vhost="/",  # RabbitMQ reads the CONNECT host header as its virtual host; ActiveMQ ignores it
        )
        if self.config.max_frame_bytes:
            connection.transport.receive = FrameGuard(connection.transport.receive, self.config.max_frame_bytes).receive
        for broker in self.config.brokers:
            if broker.tls and self.config.tls_server_name and self.config.tls_ca:
                # The handshake proves the broker holds the key of the certificate it shows; that
                # certificate is then checked here, before any frame is sent.
                connection.set_ssl(for_hosts=[(broker.host, broker.port)], verify=False,
                                   cert_validator=_NamedCertificate(connection, self.config.tls_ca,
                                                                    self.config.tls_server_name))
            elif broker.tls:
                connection.set_ssl(
                    for_hosts=[(broker.host, broker.port)],
                    ca_certs=str(self.config.tls_ca) if self.config.tls_ca else None,
                )
        listener = _Listener(self, connection)
        connection.set_listener("drbootstrap", listener)
        try:
            connection.connect(self.config.user, self.config.password, wait=True, with_connect_command=True)
        except (ConnectFailedException, StompException, OSError) as error:
            _disconnect(connection)
            raise MessagingError(
                f"cannot connect to any broker ({self._broker_list()})", hint="is the broker running and reachable?"
            ) from error
        with self._lock:
            if self._closing:
                _disconnect(connection)
                raise MessagingError("transport closed while connecting")
            self._connection = connection
            receipt = f"subscribed-{secrets.token_hex(4)}"
            received = self._receipts.setdefault(receipt, threading.Event())
            listener.setup = received  # an ERROR before the receipt ends the wait (on_error)
            for index, entry in enumerate(self.subscriptions, start=1):
                last = index == len(self.subscriptions)
                self._subscribe(connection, index, entry, receipt=receipt if last else None)
        # The broker answers the last SUBSCRIBE's receipt once it has made every one of them (in
        # order): a reply queue RabbitMQ declares on SUBSCRIBE then exists before the first request.
        confirmed = not self.subscriptions or received.wait(self.config.connect_timeout)
        self._receipts.pop(receipt, None)
        listener.setup = None
        with self._lock:
            if self._connection is not connection:  # lost meanwhile: _lost's thread (or close) carries on
                return
        problem = (f"the broker answered {listener.setup_error!r} before confirming the subscriptions"
                   if listener.setup_error is not None else
                   None if confirmed else f"no receipt for the subscriptions within {self.config.connect_timeout:g} s")
        if problem and (listener.setup_error is not None or self.config.confirm_subscriptions):
            # Seen on a starved ActiveMQ: "Already connected." on a fresh connection, then no receipt;
            # replies to what this connection sent would have gone nowhere. A new one starts clean.
            log.warning("%s: %s; connecting again", self.name, problem)
            with self._lock:
                if self._connection is connection:
                    self._connection = None  # before disconnect(): _lost must not start a reconnect
            _disconnect(connection)
            raise _Unconfirmed(f"{problem} ({self._broker_list()})", hint="is the broker overloaded?")
        if problem:
            log.warning("%s: %s", self.name, problem)
        with self._lock:
            if self._connection is connection:
                self.connected.set()

    def _subscribe(self, connection: StompConnection12, index: int, entry: tuple[str, dict[str, str]],
                   receipt: str | None = None) -> None:
        destination, headers = entry
        if receipt is not None:
            headers = {**headers, "receipt": receipt}
        connection.subscribe(destination, id=str(index), ack="auto", headers=headers)

    def _lost(self, connection: StompConnection12) -> None:
        """The connection dropped: reconnect in the background with capped, jittered backoff."""
        with self._lock:
            if connection is not self._connection or self._closing:
                return
            self._connection = None
            self.connected.clear()
            if self._reconnect_thread is not None and self._reconnect_thread.is_alive():
                return
            log.warning("%s: lost the broker connection; reconnecting", self.name)
            self._reconnect_thread = threading.Thread(
                target=self._reconnect_forever, name=f"reconnect-{self.name}", daemon=True
            )
            self._reconnect_thread.start()

    def _reconnect_forever(self) -> None:
        delay = self.config.backoff_initial
        while not self._closing:
            time.sleep(delay * random.uniform(0.8, 1.2))
            if self.before_reconnect is not None:
                self.before_reconnect()
            try:
                self._connect_once()
            except MessagingError:
                delay = min(delay * 2, self.config.backoff_max)
                continue
            if self.connected.is_set():
                self.reconnects += 1
                log.warning("%s: reconnected to the broker", self.name)
                return
            # Lost again before the subscriptions were receipted (a broker refusing one while its
            # cluster fails over): this thread is the one that must keep trying.
            delay = min(delay * 2, self.config.backoff_max)

    def _broker_list(self) -> str:
        return ", ".join(str(b) for b in self.config.brokers)


def _disconnect(connection: StompConnection12) -> None:
    """DISCONNECT, best effort. stomp.py closes the socket when the broker receipts it; a broker that
    never does is left to stomp.py's heart-beat watch, which closes it (not done here: its TLS
    shutdown waits for the broker's answer, and this thread must not wait on a silent broker)."""
    try:
        connection.disconnect()
    except (StompException, OSError):
        pass


class _NamedCertificate:
    """stomp.py's cert_validator: the broker's certificate chains to the trusted CA and names NAME."""

    def __init__(self, connection: StompConnection12, trusted: Path, name: str) -> None:
        self.connection, self.trusted, self.name = connection, trusted, name

    def __call__(self, _cert: object, _host: str) -> tuple[bool, str]:
        from drbootstrap.messaging.broker_ca import certificate_problem

        der = self.connection.transport.socket.getpeercert(binary_form=True)
        problem = certificate_problem(der or b"", self.trusted.read_text(), self.name) if der else "no certificate"
        if problem:
            log.warning("%s", problem)
        return problem is None, problem or ""


class _Listener(ConnectionListener):
    def __init__(self, transport: StompTransport, connection: StompConnection12) -> None:
        self.transport = transport
        self.connection = connection
        self.setup: threading.Event | None = None  # set while the subscriptions await their receipt
        self.setup_error: str | None = None

    def on_message(self, frame) -> None:  # noqa: ANN001 - stomp.py's Frame
        body = frame.body if isinstance(frame.body, bytes) else str(frame.body).encode()
        try:
            self.transport.on_message(body, frame.headers)
        except Exception as error:  # one bad message must not kill the receiver thread
            log.warning("%s: message handler failed: %s: %s", self.transport.name, type(error).__name__, error)
            log.debug("message handler failure", exc_info=True)

    def on_receipt(self, frame) -> None:  # noqa: ANN001
        received = self.transport._receipts.get(frame.headers.get("receipt-id", ""))
        if received is not None:
            received.set()

    def on_error(self, frame) -> None:  # noqa: ANN001
        message = frame.headers.get("message", "")
        log.warning("%s: broker error: %s", self.transport.name, message)
        setup = self.setup
        if setup is not None and not setup.is_set():
            self.setup_error = message
            setup.set()

    def on_disconnected(self) -> None:
        self.transport._lost(self.connection)
        self._end_setup()

    def on_heartbeat_timeout(self) -> None:
        self.transport._lost(self.connection)
        self._end_setup()

    def _end_setup(self) -> None:
        setup = self.setup
        if setup is not None:
            setup.set()  # no receipt will come on a lost connection: stop waiting for it
