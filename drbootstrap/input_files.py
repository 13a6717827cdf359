"""Bounded reads of the files a user (or a crash) hands us: the spec, the journal.

A regular file only (a FIFO is refused without waiting for a writer), at most a given size, UTF-8
text; a refusal names the place to look at (line, column) so the caller can make it one line.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


@dataclass
class Unreadable(Exception):
    """Why a file cannot be taken as input: where (1-based), what, and how to fix it."""

    line: int
    column: int
    what: str
    fix: str

    def located(self, path: Path | str) -> str:
        return f"{path}:{self.line}:{self.column}: {self.what} ({self.fix})"


def read_bounded_text(path: Path, *, limit: int, what: str, too_big_fix: str) -> str:
    """The UTF-8 text of the regular file PATH of at most LIMIT bytes, else Unreadable.

    WHAT names the file in messages ("the spec", "the journal").
    """
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise Unreadable(1, 1, f"cannot read {what}: {error.strerror}", "check the path and its permissions") from None
    try:
        mode = os.fstat(descriptor).st_mode
        for test, kind in _KINDS:
            if test(mode):
                raise Unreadable(1, 1, f"{what} is {kind}, not a file", "give the path of a regular file")
        data = _read_at_most(descriptor, limit + 1)
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise Unreadable(1, 1, f"{what} is more than {limit} bytes", too_big_fix)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = position_of_byte(data, error.start)
        raise Unreadable(
            line, column, f"not UTF-8 text (byte 0x{data[error.start]:02x})", "save the file as UTF-8"
        ) from None


def _read_at_most(descriptor: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(descriptor, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def position_of_byte(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column in characters) of byte OFFSET of DATA."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def position_of_char(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of character INDEX of TEXT."""
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1
