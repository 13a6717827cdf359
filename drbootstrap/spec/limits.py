"""The bounds every spec file is held to, and the bounded read of one from disk.

A spec is a few kilobytes written by a person. Anything far beyond that (a multi-megabyte file,
an alias bomb, a document nested thousands deep, a FIFO given by mistake) is refused with one
located line, fast, before anything is launched.
"""

from __future__ import annotations

from pathlib import Path

from drbootstrap.bounded_yaml import MAX_CHARS, MAX_DEPTH, MAX_SCALAR_CHARS, MAX_VALUES
from drbootstrap.errors import SpecError
from drbootstrap.input_files import Unreadable, read_bounded_text

__all__ = [
    "MAX_CHARS",
    "MAX_DEPTH",
    "MAX_GROUPS",
    "MAX_NODES",
    "MAX_PROBLEMS",
    "MAX_SCALAR_CHARS",
    "MAX_SPEC_BYTES",
    "MAX_STANDBY",
    "MAX_VALUES",
    "read_spec_text",
]

MAX_SPEC_BYTES = 256 * 1024  # the file on disk; the largest example is about 3 KB
MAX_NODES = 10_000  # hosts in the environment, all groups together, after count: expansion
MAX_STANDBY = 10  # warm spares per group: each is a running node, billed like the active ones
MAX_GROUPS = 256  # node groups (roles); bounds the longest `after:` chain the plan walks
MAX_PROBLEMS = 50  # lines reported for one file; a person fixes the first ones and runs again



def read_spec_text(path: Path) -> str:
    """The text of the spec file at PATH, or SpecError with one located line saying why not.

    Refuses anything but a regular file (without blocking on a FIFO), more than MAX_SPEC_BYTES,
    and bytes that are not UTF-8 (located at the first bad byte).
    """
    try:
        return read_bounded_text(
            path,
            limit=MAX_SPEC_BYTES,
            what="the spec",
            too_big_fix="a spec is a few kilobytes: check that this is the right file",
        )
    except Unreadable as refusal:
        raise SpecError([refusal.located(path)]) from None
