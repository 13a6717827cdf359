"""The bounded Marshal reader's fast integer path (tests/bench/bench_mco_codec.py) reads every
Marshal long as Ruby writes it: the one-byte forms, each multi-byte width, both signs, and refuses
what it refused before (a long wider than 4 bytes, truncated data)."""

from __future__ import annotations

import pytest

from drbootstrap.messaging import ruby_marshal as rm
from drbootstrap.messaging.marshal_reader import MarshalLimitError, load_bounded

BOUNDARIES = [0, 1, -1, 4, 5, -5, -6, 122, 123, -123, -124, 255, 256, -256, -257, 65535, 65536, -65536,
              -65537, 2**24 - 1, 2**24, -(2**24), -(2**24) - 1, 2**30 - 1, -(2**30)]


@pytest.mark.parametrize("number", BOUNDARIES)
def test_every_width_and_sign_of_a_marshal_long_reads_back(number):
    assert load_bounded(rm.dumps(number)) == number
    assert load_bounded(rm.dumps([number, {number: number}])) == [number, {number: number}]


@pytest.mark.parametrize("raw", [b"\x04\x08i\x05\x01\x02\x03\x04\x05", b"\x04\x08i\xfb\x01\x02\x03\x04\x05",
                                 b"\x04\x08i\x02\x01", b"\x04\x08i", b"\x04\x08[\x07"])
def test_longs_beyond_four_bytes_and_truncated_data_are_refused(raw):
    with pytest.raises(MarshalLimitError):
        load_bounded(raw)
