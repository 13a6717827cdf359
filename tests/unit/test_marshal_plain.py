"""marshal_plain, the one-pass reader the mcollective codec uses, against the exact way
(marshal_reader then to_python): whatever it reads it reads the same, and whatever the exact way
refuses it does not read (it raises NotPlain, and the codec lets the exact way word the refusal)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drbootstrap.errors import SecurityError
from drbootstrap.messaging import ruby_marshal as rm
from drbootstrap.messaging.marshal_plain import NotPlain, load_plain
from drbootstrap.messaging.marshal_reader import MarshalLimitError, load_bounded
from drbootstrap.messaging.mcollective import McollectiveProtocol, psk_digest
from drbootstrap.messaging.ruby_marshal import MarshalError, Sym
from tests.support.hostile_messages import link_bomb, wide_link_bomb
from tests.unit.test_marshal_reader_longs import BOUNDARIES
from tests.unit.test_marshal_writer import INTEGERS, SHAPES, STRINGS, values

DATA = Path(__file__).parent / "data" / "mcollective"
BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def agrees_with_the_exact_way(data: bytes, **bounds) -> None:
    try:
        exact = rm.to_python(load_bounded(data, **bounds))
    except (MarshalError, MarshalLimitError):
        exact = NotPlain
    try:
        plain = load_plain(data, **bounds)
    except NotPlain:
        return  # the exact way decides: the same answer by construction
    assert exact is not NotPlain, f"read what the exact way refuses: {data!r}"
    assert repr(plain) == repr(exact)  # types too (1, 1.0, True; str, bytes), and NaN


@pytest.mark.parametrize("number", BOUNDARIES + INTEGERS)
def test_every_width_and_sign_of_a_long_reads_as_the_exact_way(number):
    for value in (number, [number, {number: number}]):
        assert load_plain(rm.dumps(value)) == rm.to_python(rm.loads_raw(rm.dumps(value)))


@pytest.mark.parametrize("raw", [b"\x04\x08i\x05\x01\x02\x03\x04\x05", b"\x04\x08i\xfb\x01\x02\x03\x04\x05",
                                 b"\x04\x08i\x02\x01", b"\x04\x08i", b"\x04\x08[\x07", b"\x04\x08i\x00\x00"])
def test_longs_beyond_four_bytes_truncated_and_trailing_data_are_not_read(raw):
    with pytest.raises(NotPlain):
        load_plain(raw)


def test_strings_and_shapes_read_as_the_exact_way():
    for value in STRINGS + SHAPES:
        agrees_with_the_exact_way(rm.dumps(value))
        agrees_with_the_exact_way(rm.dumps({Sym("k"): value, "l": [value, value]}))


@pytest.mark.parametrize("name", sorted(path.name for path in DATA.glob("*.bin")))
def test_real_mco_messages_take_the_fast_path_and_read_as_the_exact_way(name):
    raw = (DATA / name).read_bytes()
    envelope = load_plain(raw, envelope=True)
    assert envelope == rm.to_python(rm.loads_raw(raw))
    assert load_plain(rm.raw_string(rm.get(rm.loads_raw(raw), "body"))) is not None


@BOUNDED
@given(values)
def test_any_value_reads_as_the_exact_way(value):
    agrees_with_the_exact_way(rm.dumps(value))


@BOUNDED
@given(values, st.data())
def test_any_damaged_value_is_read_as_the_exact_way_or_left_to_it(value, data):
    raw = bytearray(rm.dumps(value))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(2, max(2, len(raw) - 1)))
        if at < len(raw):
            raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(2, len(raw)))
    agrees_with_the_exact_way(bytes(raw))
    agrees_with_the_exact_way(bytes(raw[:cut]))


@BOUNDED
@given(st.binary(max_size=300))
@example(link_bomb())
@example(wide_link_bomb())
@example(b"\x04\x08[\x04\xff\xff\xff\x7f")
@example(b'\x04\x08I"\x06a\x07:\x06ET:\rencoding"\nUTF-8')
@example(b'\x04\x08{\x06I"\x06a\x06:\x06ETi\x06')
def test_any_bytes_are_read_as_the_exact_way_or_left_to_it_quickly(tail):
    started = time.monotonic()
    agrees_with_the_exact_way(tail if tail.startswith(b"\x04\x08") else b"\x04\x08" + tail)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("bounds", [{"max_depth": 2}, {"max_nodes": 5}, {"max_depth": 0, "max_nodes": 1}])
def test_tighter_bounds_are_kept_as_the_exact_way_keeps_them(bounds):
    for value in SHAPES + [[[[1]]], list(range(10)), {"a": {"b": {"c": 1}}}]:
        agrees_with_the_exact_way(rm.dumps(value), **bounds)
    with pytest.raises(NotPlain):
        load_plain(rm.dumps([[[1]]]), max_depth=2)
    with pytest.raises(NotPlain):
        load_plain(rm.dumps(list(range(5))), max_nodes=5)


def test_an_envelope_not_shaped_as_mco_sends_it_is_left_to_the_exact_way():
    for envelope in ({"body": b"x", Sym("hash"): rm.AsciiStr("h")}, {Sym("body"): "x", Sym("hash"): rm.AsciiStr("h")},
                     {Sym("body"): b"x", Sym("hash"): b"h"}, {Sym("body"): b"x", Sym("hash"): Sym("h")}):
        with pytest.raises(NotPlain):
            load_plain(rm.dumps(envelope), envelope=True)


def test_a_digest_that_is_not_ascii_is_an_invalid_signature_not_a_crash():
    protocol = McollectiveProtocol("psk", clock=lambda: 1000)
    body = rm.dumps("ping")
    for digest in (rm.AsciiStr("é" * 32), "é" * 32):
        raw = rm.dumps({Sym("body"): body, Sym("hash"): digest})
        with pytest.raises(SecurityError, match="invalid psk signature"):
            protocol.decode_request(raw, {})
    assert psk_digest(body, "psk").isascii()


def test_drbootstraps_own_requests_and_replies_take_the_fast_path():
    from drbootstrap.messaging.envelope import Reply, Request

    protocol = McollectiveProtocol("psk", clock=lambda: 1000)
    for agent, data in (("discovery", {}), ("rpcutil", {"fact": "role"})):
        request = Request("r" * 32, "s", "uid=0", agent, "ping", data, created_at=1000, reply_to="/queue/x.reply")
        reply = Reply(request.request_id, "web01", agent, "ping", data={"pong": 1000}, created_at=1000)
        for raw in (protocol.request_frames(request)[0].body, protocol.reply_frame(reply, request).body):
            envelope = load_plain(raw, envelope=True)
            assert load_plain(rm.raw_string(rm.get(rm.loads_raw(raw), "body"))) is not None
            assert envelope == rm.to_python(rm.loads_raw(raw))


def test_per_message_shortcuts_give_what_the_long_way_gives():
    from drbootstrap.messaging.envelope import Filter
    from drbootstrap.messaging.mcollective_filters import empty_filter, filter_from_wire

    assert filter_from_wire(empty_filter()) == Filter() == filter_from_wire({**empty_filter(), "compound": []})
    assert filter_from_wire({**empty_filter(), "agent": ["mcollective"]}) == Filter()
    assert psk_digest(b"body", "sécret") == psk_digest(b"body", "sécret".encode())
