"""Test-only: a threaded HTTP proxy on loopback in front of moto that injects EC2's throttling and
transient faults (deterministic from a seed), records when every request arrived, and can hold back
the answer to one action (after moto acted on it) while a test kills the client, and can refuse
the requests that carry a given parameter with an EC2 error of the test's choosing (RunInstances
for one instance type with InsufficientInstanceCapacity, as EC2 answers it), never reaching moto.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

THROTTLE = "throttle"  # HTTP 503 RequestLimitExceeded, as EC2 answers; the request never reaches moto
UNAVAILABLE = "unavailable"  # HTTP 503 Unavailable; never reaches moto
LOST_ANSWER = "lost_answer"  # reaches moto, then the connection is cut before the answer

_ERROR_BODY = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
               "<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when the request line was read
    action: str
    fault: str | None


@dataclass
class FaultPlan:
    rate: float = 1 / 3
    seed: int = 1
    kinds: tuple[str, ...] = (THROTTLE, UNAVAILABLE)
    actions: frozenset[str] | None = None  # None: every action may fail
    latency: float = 0.0  # seconds added before forwarding, to model a remote cloud


@dataclass(frozen=True)
class Refusal:
    """Requests of `action` whose `parameter` is `value` are answered `code` (HTTP `status`)."""

    action: str
    parameter: str
    value: str
    code: str
    status: int = 500
    message: str = "We currently do not have sufficient capacity in the Availability Zone you requested."


@dataclass
class FaultyProxy:
    url: str
    upstream: tuple[str, int]
    plan: FaultPlan
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refusals: list[Refusal] = field(default_factory=list)
    # Serve the API under this path (as Eucalyptus serves EC2 at /services/compute): requests
    # there reach moto at its root, requests elsewhere are answered 404.
    path_prefix: str = ""
    paths: set[str] = field(default_factory=set)  # every request path seen (without the query)
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)  # (action, parameters)
    # moto picks the API by a signature version 4 credential scope, and a version 2 request
    # (Eucalyptus's) has none, so moto would answer as S3: "ec2" adds an Authorization header
    # naming that service (moto checks no signature) to a request that carries none.
    upstream_service: str | None = None

    hold_action: str | None = None  # the next answer to this action is held until `release` is set
    holding: threading.Event = field(default_factory=threading.Event)  # set while an answer is held
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.plan.seed)

    def hold_next(self, action: str) -> None:
        """Hold back the answer to the next `action` that reaches moto, until release is set."""
        with self.lock:
            self.holding, self.release = threading.Event(), threading.Event()
            self.hold_action = action

    def _take_hold(self, action: str) -> tuple[threading.Event, threading.Event] | None:
        with self.lock:
            if action != self.hold_action:
                return None
            self.hold_action = None
            return self.holding, self.release

    def decide(self, action: str) -> str | None:
        """Record the arrival and pick its fault: the seeded sequence is consumed in arrival order."""
        with self.lock:
            now = time.monotonic()
            fault = None
            roll, pick = self._rng.random(), self._rng.choice(self.plan.kinds)
            if (self.plan.actions is None or action in self.plan.actions) and roll < self.plan.rate:
                fault = pick
            self.arrivals.append(Arrival(now, action, fault))
            return fault

    def times(self, action: str | None = None) -> list[float]:
        with self.lock:
            return [a.at for a in self.arrivals if action is None or a.action == action]

    def count(self, action: str | None = None, fault: str | None | bool = False) -> int:
        with self.lock:
            return sum(1 for a in self.arrivals if (action is None or a.action == action)
                       and (fault is False or a.fault == fault))


def max_in_any_window(times: list[float], window: float) -> int:
    """The largest number of timestamps inside any closed window of `window` seconds."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _params_of(path: str, body: bytes) -> dict[str, list[str]]:
    query = parse_qs(urlsplit(path).query)
    if not query.get("Action") and body:
        query = parse_qs(body.decode("utf-8", "replace"))
    return query


def _action_of(path: str, body: bytes) -> str:
    return (_params_of(path, body).get("Action") or ["?"])[0]


def _handler_for(proxy: FaultyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - quiet test output
            pass

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in separate writes; without this, Nagle plus delayed ACKs
            # add ~40 ms to every answer and the proxy, not the cloud, sets the pace.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with proxy.lock:
                proxy.paths.add(urlsplit(self.path).path)
            if proxy.path_prefix:
                if not self.path.startswith(proxy.path_prefix):
                    self._reply(404, [("Content-Type", "text/plain")], b"not the API path")
                    return
                self.path = self.path[len(proxy.path_prefix):] or "/"
                if not self.path.startswith("/"):
                    self.path = "/" + self.path
            action = _action_of(self.path, body)
            params = _params_of(self.path, body)
            with proxy.lock:
                proxy.requests.append((action, params))
            refusal = next((r for r in proxy.refusals if r.action == action
                            and r.value in params.get(r.parameter, [])), None)
            if refusal is not None:
                with proxy.lock:
                    proxy.arrivals.append(Arrival(time.monotonic(), action, refusal.code))
                payload = _ERROR_BODY.format(code=refusal.code, message=refusal.message,
                                             request_id=f"refused-{action}").encode()
                self._reply(refusal.status, [("Content-Type", "text/xml;charset=UTF-8")], payload)
                return
            fault = proxy.decide(action)
            if fault in (THROTTLE, UNAVAILABLE):
                code, message = (("RequestLimitExceeded", "Request limit exceeded.") if fault == THROTTLE
                                 else ("Unavailable", "The server is overloaded and cannot handle the request."))
                payload = _ERROR_BODY.format(code=code, message=message, request_id=f"fault-{action}").encode()
                self._reply(503, [("Content-Type", "text/xml;charset=UTF-8")], payload)
                return
            if proxy.plan.latency:
                time.sleep(proxy.plan.latency)
            status, headers, payload = self._forward(body)
            hold = proxy._take_hold(action) if fault is None else None
            if hold is not None:
                holding, release = hold
                holding.set()
                release.wait(120)
                try:
                    self._reply(status, headers, payload)
                except OSError:
                    self.close_connection = True  # the client was killed meanwhile
                return
            if fault == LOST_ANSWER:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._reply(status, headers, payload)

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                if proxy.upstream_service and not any(k.lower() == "authorization" for k in headers):
                    headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/"
                                                f"{proxy.upstream_service}/aws4_request, SignedHeaders=host, "
                                                "Signature=0")
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                kept = [(k, v) for k, v in response.getheaders()
                        if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length")]
                return response.status, kept, payload
            finally:
                upstream.close()

        def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _handle

    return Handler


@contextmanager
def running_faulty_proxy(upstream_url: str, plan: FaultPlan | None = None, *,
                         path_prefix: str = "", upstream_service: str | None = None) -> Iterator[FaultyProxy]:
    """Serve the proxy on 127.0.0.1:<free port> (under `path_prefix`) in a thread; shut it down afterwards."""
    parts = urlsplit(upstream_url)
    proxy = FaultyProxy(url="", upstream=(parts.hostname or "127.0.0.1", parts.port or 80), plan=plan or FaultPlan(),
                        path_prefix=path_prefix, upstream_service=upstream_service)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}{path_prefix}"
    thread = threading.Thread(target=server.serve_forever, name="faulty-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
