"""Test-only: a loopback HTTP proxy in front of moto's S3 that, while told to, answers 500s, resets
connections, or never answers at all; it records what it did to each request."""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FORWARD = "forward"
ERROR_500 = "500"
RESET = "reset"
SILENT = "silent"  # read the request, never answer (until the proxy stops)
FLAKY = "flaky"  # 500s and resets in turn


@dataclass
class S3FaultProxy:
    url: str
    upstream: tuple[str, int]
    mode: str = FORWARD  # what to do now; FLAKY alternates 500s and resets

    seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def set_mode(self, mode: str) -> None:
        with self.lock:
            self.mode = mode

    def decide(self) -> str:
        with self.lock:
            mode = self.mode
            if mode == FLAKY:
                mode = (ERROR_500, RESET)[len(self.seen) % 2]
            self.seen.append(mode)
            return mode

    def count(self, mode: str) -> int:
        with self.lock:
            return self.seen.count(mode)


def _handler(proxy: S3FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - quiet test output
            pass

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            action = proxy.decide()
            if action == SILENT:
                proxy.stopping.wait(600)
                self.close_connection = True
                return
            if action == RESET:  # RST, not FIN: the client sees "connection reset by peer"
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            if action == ERROR_500:
                payload = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                           b"<Message>We encountered an internal error. Please try again.</Message></Error>")
                self._reply(500, [("Content-Type", "application/xml")], payload)
                return
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                kept = [(k, v) for k, v in response.getheaders()
                        if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length")]
            finally:
                upstream.close()
            self._reply(response.status, kept, payload, head=self.command == "HEAD")

        def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes, head: bool = False) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if not head:
                self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    return Handler


@contextmanager
def s3_fault_proxy(upstream_port: int) -> Iterator[S3FaultProxy]:
    """The proxy on a free loopback port, forwarding to moto on UPSTREAM_PORT until told otherwise."""
    proxy = S3FaultProxy("", ("127.0.0.1", upstream_port))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
