"""A one-shot HTTP URL for one object of a bucket whose driver signs no URLs (libcloud's local
storage): the controller serves that object once, at an address only the environment's nodes and
this machine reach, behind a random token, for a bounded time. Runs on the controller."""

from __future__ import annotations

import contextlib
import http.server
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drbootstrap.backups.object_store import ObjectStore


@contextlib.contextmanager
def serve_once(store: ObjectStore, key: str, address: str, seconds: float) -> Iterator[str]:
    """The URL that reads `key` once within SECONDS; the server stops when the block ends."""
    url, stop = start_serving_once(store, key, address, seconds)
    try:
        yield url
    finally:
        stop()


def start_serving_once(store: ObjectStore, key: str, address: str, seconds: float) -> tuple[str, Callable[[], None]]:
    """The URL that reads `key` once within SECONDS, and what stops it sooner. For a reader that comes
    later than the caller's block (a master fetching its state while it boots): the server stops by
    itself once served or after SECONDS."""
    size = store.size(key)
    token = secrets.token_urlsafe(32)
    served = threading.Event()
    server: http.server.ThreadingHTTPServer

    class OneObject(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != f"/{token}" or served.is_set():
                self.send_error(404)
                return
            served.set()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            for chunk in store.iter_chunks(key):
                self.wfile.write(chunk)
            threading.Thread(target=stop, daemon=True).start()

        def log_message(self, *args: object) -> None:
            pass  # the token is in the request line: never logged

    server = http.server.ThreadingHTTPServer((address, 0), OneObject)
    server.timeout = seconds
    thread = threading.Thread(target=server.serve_forever, name="dump-url", daemon=True)
    thread.start()
    stopped = threading.Lock()

    def stop() -> None:
        if not stopped.acquire(blocking=False):
            return
        timer.cancel()
        server.shutdown()
        server.server_close()

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{server.server_address[1]}/{token}", stop
