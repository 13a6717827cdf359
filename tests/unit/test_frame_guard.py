"""FrameGuard: frames within the limit reach stomp.py byte for byte; larger ones are read past
(never buffered) and replaced by an empty frame carrying the oversized header."""

from __future__ import annotations

import pytest

from drbootstrap.messaging.frame_guard import OVERSIZED_HEADER, FrameGuard

SMALL_WITH_NUL = b"MESSAGE\ndestination:/q/a\ncontent-length:5\n\nab\x00de\x00\n"
SMALL = b"MESSAGE\ndestination:/q/b\n\nhello\x00"
BIG = b"MESSAGE\ndestination:/q/c\n\n" + b"x" * 100 + b"\x00"
BIG_WITH_LENGTH = b"MESSAGE\ndestination:/q/d\ncontent-length:100\n\n" + b"y" * 100 + b"\x00"
BIG_HEAD = b"MESSAGE\nx:" + b"h" * 300 + b"\n\nbody\x00"


def pieces(stream: bytes, chunk: int) -> list[bytes]:
    chunks = iter([stream[i : i + chunk] for i in range(0, len(stream), chunk)] + [b""])
    guard = FrameGuard(lambda: next(chunks), 50, head_limit=200)
    out = []
    while piece := guard.receive():
        out.append(piece)
    return out


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 4096])
def test_small_frames_pass_unchanged_and_large_ones_become_marked_empty_frames(chunk):
    stream = b"\n" + SMALL_WITH_NUL + b"\n" + BIG + SMALL + BIG_WITH_LENGTH + SMALL + BIG_HEAD + SMALL
    out = pieces(stream, chunk)
    marked = [piece for piece in out if OVERSIZED_HEADER.encode() in piece]
    assert b"".join(piece for piece in out if piece not in marked) == b"\n" + SMALL_WITH_NUL + b"\n" + SMALL * 3
    assert len(marked) == 3 and all(piece.endswith(b"\n\n\x00") and len(piece) < 200 for piece in marked)
    assert b"destination:/q/d" in marked[1] and b"content-length" not in marked[1]


@pytest.mark.parametrize("chunk", [1, 4096])
def test_a_run_of_heartbeats_before_a_frame_with_nul_bytes_reaches_stomp_py_as_heartbeats_then_the_frame(chunk):
    # stomp.py buffered "\n\n" before the next frame, read it as an empty header block and cut the
    # NUL-holding body (MCollective's Ruby Marshal) into bogus frames ("unknown response frame type").
    from stomp.transport import BaseTransport

    from drbootstrap.messaging import stomp_core  # noqa: F401 - registers the lean stomp package

    stream = b"\n\n\r\n" + SMALL_WITH_NUL + b"\r\n\r\n"
    chunks = iter([stream[i : i + chunk] for i in range(0, len(stream), chunk)] + [b""])
    guard = FrameGuard(lambda: next(chunks), 50, head_limit=200)
    transport = BaseTransport()
    transport.running = True
    transport.receive = guard.receive
    frames: list[bytes] = []
    while not frames or frames[-1] == b"\n":
        frames += transport._BaseTransport__read()
    assert frames == [b"\n", b"\n", b"\n", SMALL_WITH_NUL[: SMALL_WITH_NUL.index(b"de\x00") + 2]]
