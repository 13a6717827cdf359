"""A bound on incoming STOMP frames, applied in the receive path before stomp.py buffers them.

stomp.py keeps reading a frame until its end however large it is; an agent's limit checked after
that has already spent the memory. FrameGuard sits between the socket and stomp.py's parser: it
holds at most `limit` body bytes of a frame (and HEAD_LIMIT of its headers); a larger frame is
read past and replaced by an empty one carrying OVERSIZED_HEADER, which the agent refuses with a
clear line. Frames within the limit reach stomp.py byte for byte as they arrived; the EOLs between
frames (heartbeats) reach it one LF at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable

OVERSIZED_HEADER = "drb-oversized"
HEAD_LIMIT = 64 * 1024  # command line and headers; ActiveMQ's own are well under 1 KiB
_CONTENT_LENGTH = re.compile(rb"(?:^|\n)content-length:[ \t]*([0-9]{1,12})\r?(?=\n|$)")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


class FrameGuard:
    """Wraps a transport's receive(): `connection.transport.receive = FrameGuard(old, limit).receive`."""

    def __init__(self, receive: Callable[[], bytes | None], limit: int, *, head_limit: int = HEAD_LIMIT) -> None:
        self._inner = receive
        self.limit = limit
        self.head_limit = head_limit
        self.refused = 0
        self._pending: list[bytes] = []  # complete pieces (frames, heartbeats) ready for stomp.py
        self._buffer = bytearray()  # the current frame's bytes, while it is within bounds
        self._state = "between"  # between | head | body | skip
        self._body_length: int | None = None  # from content-length, else the NUL ends the body
        self._head = b""  # the current frame's command and headers
        self._frame = b""  # the same with the blank line that ends them
        self._skipped = 0  # bytes read past while skipping an oversized frame
        self._skip_left: int | None = None  # skip: bytes left (content-length), or None (to NUL)

    def receive(self) -> bytes | None:
        while not self._pending:
            chunk = self._inner()
            if not chunk:
                return chunk
            self._feed(bytes(chunk))
        return self._pending.pop(0)

    # -- the state machine ------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        position = 0
        while position < len(data):
            if self._state == "between":
                position = self._between(data, position)
            elif self._state == "head":
                position = self._read_head(data, position)
            elif self._state == "body":
                position = self._read_body(data, position)
            else:
                position = self._skip(data, position)

    def _between(self, data: bytes, position: int) -> int:
        end = position
        while end < len(data) and data[end] in b"\r\n":
            end += 1
        if end > position:
            # One LF per EOL (heartbeats, or the EOL after a frame): stomp.py takes a lone LF as a
            # heartbeat, but buffers a run of EOLs ("\n\n") before the next frame, then reads
            # that blank line as the end of an empty header block, misses content-length, and cuts
            # a body holding NUL bytes (MCollective's Ruby Marshal) into bogus frames.
            self._pending.extend(_eols(data[position:end]))
        if end < len(data):
            self._state = "head"
        return end

    def _read_head(self, data: bytes, position: int) -> int:
        old = len(self._buffer)
        self._buffer += data[position:]
        match = _HEAD_END.search(self._buffer, max(0, old - 3))
        if match is None or match.start() > self.head_limit:
            if len(self._buffer) > self.head_limit:  # read on to the NUL from this chunk's start
                self._head, self._skip_left = b"MESSAGE", None
                self._begin_skip(old)
                return position
            return len(data)
        consumed = position + match.end() - old
        self._head = bytes(self._buffer[: match.start()])
        self._frame = bytes(self._buffer[: match.end()])
        self._buffer = bytearray()
        length = _CONTENT_LENGTH.search(self._head)
        self._body_length = int(length.group(1)) if length else None
        if self._body_length is not None and self._body_length > self.limit:
            self._skip_left = self._body_length + 1  # the body and its NUL
            self._begin_skip(0)
        else:
            self._state = "body"
        return consumed

    def _read_body(self, data: bytes, position: int) -> int:
        if self._body_length is not None:
            take = data[position : position + self._body_length + 1 - len(self._buffer)]
            self._buffer += take
            if len(self._buffer) == self._body_length + 1:
                self._finish()
            return position + len(take)
        nul = data.find(b"\x00", position)
        end = len(data) if nul < 0 else nul + 1
        self._buffer += data[position:end]
        if len(self._buffer) - (1 if nul >= 0 else 0) > self.limit:
            self._skip_left = None
            self._begin_skip(len(self._buffer))
            if nul >= 0:
                self._end_skip()
            return end
        if nul >= 0:
            self._finish()
        return end

    def _finish(self) -> None:
        self._pending.append(self._frame + bytes(self._buffer))
        self._buffer = bytearray()
        self._state = "between"

    def _begin_skip(self, already: int) -> None:
        self._skipped = already
        self._buffer = bytearray()
        self._state = "skip"

    def _skip(self, data: bytes, position: int) -> int:
        if self._skip_left is not None:
            take = min(self._skip_left, len(data) - position)
            self._skip_left -= take
            self._skipped += take
            if self._skip_left == 0:
                self._end_skip()
            return position + take
        nul = data.find(b"\x00", position)
        end = len(data) if nul < 0 else nul + 1
        self._skipped += end - position
        if nul >= 0:
            self._end_skip()
        return end

    def _end_skip(self) -> None:
        """Hand stomp.py an empty frame in the oversized one's place, with its headers kept."""
        self.refused += 1
        lines = [line for line in self._head.split(b"\n") if not line.lower().startswith(b"content-length:")]
        lines.append(f"{OVERSIZED_HEADER}:{self._skipped}".encode())
        self._pending.append(b"\n".join(lines) + b"\n\n\x00")
        self._head = b""
        self._buffer = bytearray()
        self._state = "between"



def _eols(run: bytes) -> list[bytes]:
    """A run of EOLs between frames as one b"\n" each (the CR of a CRLF dropped: stomp.py takes only
    a lone LF for a heartbeat, and a buffered "\r\n\r\n" would end an empty header block too)."""
    return [b"\n"] * run.count(b"\n")
