"""Dumps sealed at rest: AES-GCM frames under a per-dump data key wrapped by the spec's key; any
change, reordering or truncation of the object refuses it."""

from __future__ import annotations

import pytest

from drbootstrap.backups.sealing import Opener, SealBroken, new_data_key, parse_key, seal, unwrap_data_key
from drbootstrap.errors import DrbError

MASTER = bytes(range(32))


def _sealed(chunks: list[bytes]) -> tuple[bytes, bytes]:
    data_key, wrapped = new_data_key(MASTER)
    assert unwrap_data_key(MASTER, wrapped) == data_key
    pieces = [(chunk, index == len(chunks) - 1) for index, chunk in enumerate(chunks)]
    return data_key, b"".join(seal(iter(pieces), data_key))


def _open(data_key: bytes, sealed: bytes, piece: int = 7) -> bytes:
    opener = Opener(data_key)
    out = b"".join(opener.feed(sealed[i:i + piece]) for i in range(0, len(sealed), piece))
    opener.finish()
    return out


def test_a_sealed_dump_opens_fed_in_any_pieces():
    data_key, sealed = _sealed([b"one ", b"two ", b"three"])
    assert b"two" not in sealed
    assert _open(data_key, sealed) == b"one two three"
    empty_key, empty = _sealed([b""])
    assert _open(empty_key, empty) == b""


@pytest.mark.parametrize("damage", ["flip", "truncate", "drop-last-frame", "append"])
def test_an_altered_sealed_dump_does_not_open(damage):
    data_key, sealed = _sealed([b"a" * 100, b"b" * 100, b"c" * 100])
    frame = 4 + 100 + 16
    damaged = {"flip": sealed[:30] + bytes([sealed[30] ^ 1]) + sealed[31:], "truncate": sealed[:-5],
               "drop-last-frame": sealed[:-frame], "append": sealed + sealed[-frame:]}[damage]
    with pytest.raises(SealBroken):
        _open(data_key, damaged)


def test_the_data_key_opens_only_with_the_spec_key_and_the_key_is_256_bits():
    _, wrapped = new_data_key(MASTER)
    with pytest.raises(SealBroken, match="another key"):
        unwrap_data_key(bytes(32), wrapped)
    assert parse_key("00" * 32) == bytes(32)
    with pytest.raises(DrbError, match="not a 256-bit key"):
        parse_key("too short")
