"""Test-only: a TCP proxy on loopback in front of a real broker that breaks the first STOMP
connection made through it, as a starved ActiveMQ was seen to (a libvirt run, its master's two
JVMs sharing two cores with three booting VMs): the connection is accepted, then the broker's
answers stop while the socket stays open.

- DUPLICATE_CONNECT: once the broker answers CONNECTED, the client's CONNECT frame is sent to it a
  second time, so the real broker answers with its own ERROR ("Already connected." from ActiveMQ);
  that ERROR reaches the client, and nothing from the broker after it does.
- DEAF: the client gets CONNECTED and nothing after it (no RECEIPT, no reply, no heart-beat).

Later connections pass untouched. `connections` counts the connections accepted.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

DUPLICATE_CONNECT = "duplicate_connect"
DEAF = "deaf"


@dataclass
class StompFaultProxy:
    upstream: tuple[str, int]
    fault: str
    port: int = 0
    connections: int = 0
    broker_errors: list[bytes] = field(default_factory=list)  # ERROR frames the broker sent on a faulty one
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sockets: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"stomp://127.0.0.1:{self.port}"

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                faulty = self.connections == 1
            try:
                broker = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            broker.settimeout(None)
            with self._lock:
                self._sockets += [client, broker]
            state = {"connect": b"", "connected": False}
            threading.Thread(target=self._upward, args=(client, broker, state, faulty), daemon=True).start()
            threading.Thread(target=self._downward, args=(broker, client, state, faulty), daemon=True).start()

    def _upward(self, client: socket.socket, broker: socket.socket, state: dict, faulty: bool) -> None:
        """Client to broker, untouched; the first frame (CONNECT) is kept for DUPLICATE_CONNECT."""
        try:
            while data := client.recv(65536):
                if faulty and not state["connected"] and b"\0" not in state["connect"]:
                    state["connect"] += data
                broker.sendall(data)
        except OSError:
            pass
        _close(broker)

    def _downward(self, broker: socket.socket, client: socket.socket, state: dict, faulty: bool) -> None:
        buffer, passing = b"", True
        try:
            while data := broker.recv(65536):
                if not faulty:
                    client.sendall(data)
                    continue
                buffer += data
                while passing and b"\0" in buffer:
                    frame, buffer = buffer.split(b"\0", 1)
                    command = frame.lstrip(b"\r\n").split(b"\n", 1)[0]
                    if command == b"CONNECTED":
                        state["connected"] = True
                        client.sendall(frame + b"\0")
                        if self.fault == DUPLICATE_CONNECT:
                            broker.sendall(state["connect"].split(b"\0", 1)[0] + b"\0")
                        else:
                            passing = False
                    elif command == b"ERROR":
                        with self._lock:
                            self.broker_errors.append(frame)
                        client.sendall(frame + b"\0")
                        passing = False
                    else:
                        client.sendall(frame + b"\0")
                if not passing:
                    buffer = b""  # deaf from here on: the socket stays open, nothing reaches the client
        except OSError:
            pass
        _close(client)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@contextmanager
def stomp_fault_proxy(upstream: tuple[str, int], fault: str) -> Iterator[StompFaultProxy]:
    proxy = StompFaultProxy(upstream, fault)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    proxy.port = server.getsockname()[1]
    thread = threading.Thread(target=proxy._accept, args=(server,), daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        try:
            server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        server.close()
        thread.join(timeout=5)
        with proxy._lock:
            sockets = list(proxy._sockets)
        for sock in sockets:
            _close(sock)
