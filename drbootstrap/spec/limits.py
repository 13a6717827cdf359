"""The bounds every spec file is held to, and the bounded read of one from disk.

A spec is a few kilobytes written by a person. Anything far beyond that (a multi-megabyte file,
an alias bomb, a document nested thousands deep, a FIFO given by mistake) is refused with one
located line, fast, before anything is launched.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from drbootstrap.errors import SpecError

MAX_SPEC_BYTES = 256 * 1024  # the file on disk; the largest example is about 3 KB
MAX_DEPTH = 64  # mappings and lists inside each other; a real spec nests 6 deep
MAX_VALUES = 25_000  # YAML nodes once every alias is expanded (stops the "billion laughs")
MAX_SCALAR_CHARS = 16_384  # one key or value; a node's whole user-data must fit in 16 KB
MAX_NODES = 10_000  # hosts in the environment, all groups together, after count: expansion
MAX_PROBLEMS = 50  # lines reported for one file; a person fixes the first ones and runs again

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def read_spec_text(path: Path) -> str:
    """The text of the spec file at PATH, or SpecError with one located line saying why not.

    Refuses anything but a regular file (without blocking on a FIFO), more than MAX_SPEC_BYTES,
    and bytes that are not UTF-8 (located at the first bad byte).
    """
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        reason = f"cannot read the spec: {error.strerror}"
        raise _refusal(path, (1, 1), reason, "check the path and its permissions") from None
    try:
        mode = os.fstat(descriptor).st_mode
        for test, kind in _KINDS:
            if test(mode):
                raise _refusal(path, (1, 1), f"the spec is {kind}, not a file", "give the path of a YAML file")
        data = _read_at_most(descriptor, MAX_SPEC_BYTES + 1)
    finally:
        os.close(descriptor)
    if len(data) > MAX_SPEC_BYTES:
        raise _refusal(
            path,
            (1, 1),
            f"the spec is more than {MAX_SPEC_BYTES} bytes",
            "a spec is a few kilobytes: check that this is the right file",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _refusal(
            path,
            position_of_byte(data, error.start),
            f"not UTF-8 text (byte 0x{data[error.start]:02x})",
            "save the file as UTF-8",
        ) from None


def _read_at_most(descriptor: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(descriptor, min(65536, limit - size))
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


def _refusal(path: Path, position: tuple[int, int], what: str, fix: str) -> SpecError:
    line, column = position
    return SpecError([f"{path}:{line}:{column}: {what} ({fix})"])
