"""The own Marshal writer (marshal_writer) against the rubymarshal-based one it replaced
(tests/support/reference_marshal.py): the same bytes for every shape drbootstrap sends."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drbootstrap.messaging import ruby_marshal as rm
from drbootstrap.messaging.marshal_reader import load_bounded
from drbootstrap.messaging.marshal_writer import AsciiStr, dumps
from drbootstrap.messaging.ruby_marshal import Sym
from tests.support.reference_marshal import reference_dumps

DATA = Path(__file__).parent / "data" / "mcollective"
INTEGERS = sorted({sign * (base + delta) for base in [0, 5, 123, 124, 255, 256, 2**15, 2**16, 2**24, 2**30, 2**31,
                                                      2**32, 2**40, 2**63, 2**64, 10**30]
                   for delta in (-1, 0, 1) for sign in (1, -1)})
STRINGS = ["", "a", "pong", "é", "日本語", "emoji 🙂", "nul\0byte", "x" * 122, "x" * 123, "y" * 300, "z" * 70_000]
SHAPES = [
    None, True, False, 1.5, 0.1, -2.0, 1e100, float("inf"), float("-inf"), b"", b"\xff\xfe", b"\x04\x08i\x06",
    AsciiStr(""), AsciiStr("0123456789abcdef" * 2), Sym("a"), Sym("é"), [], {}, (), (1, "a"), [[[]]],
    [Sym("x"), Sym("x"), Sym("y"), Sym("x")], ["s", "s", AsciiStr("t")],
    {Sym("statuscode"): 0, Sym("statusmsg"): "OK", Sym("data"): {Sym("pong"): 1795308645}},
    {"fact": [{Sym("fact"): "role", Sym("value"): "web", Sym("operator"): "=="}], "cf_class": [], "agent": ["rpcutil"],
     "identity": ["/web/"], "compound": []},
    {1: "int key", -(2**40): "big key", "é": {"nested": {Sym("deep"): [1, 2**64, -1.25]}}},
]

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70) | st.floats()
    | st.text(max_size=12) | st.binary(max_size=12) | st.builds(AsciiStr, st.text(st.characters(max_codepoint=127)))
    | st.builds(Sym, st.text(min_size=1, max_size=6)),
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=6) | st.builds(Sym, st.text(min_size=1, max_size=6)) | st.integers(), inner,
                      max_size=5),
    max_leaves=30,
)


def test_every_integer_width_and_sign_string_and_shape_is_byte_identical():
    for value in INTEGERS + STRINGS + SHAPES + [INTEGERS, STRINGS, SHAPES, {Sym("all"): SHAPES}]:
        assert dumps(value) == reference_dumps(value), value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_any_value_drbootstrap_could_send_is_byte_identical(value):
    assert dumps(value) == reference_dumps(value)


@pytest.mark.parametrize("name", sorted(path.name for path in DATA.glob("*.bin")))
def test_real_mco_messages_read_raw_are_written_back_byte_for_byte(name):
    """Tests and tools edit a loads_raw envelope and re-send it. Real mco links the :agent String
    to the one in its body; rubymarshal numbered that link without the Strings before it, so two
    of these came back wrong through the old writer (see the next test)."""
    raw = (DATA / name).read_bytes()
    assert dumps(rm.loads_raw(raw)) == raw


def test_a_shared_hash_or_array_is_linked_at_the_index_rubys_reader_gives_it():
    shared_hash, shared_list = {"k": "v"}, ["x", 2**40]
    value = ["a string first", 1.5, 2**40, shared_hash, shared_list, shared_hash, shared_list]
    written = dumps(value)
    assert written.count(b"@") == 2  # links, not copies
    assert load_bounded(written) == load_bounded(dumps(value[:5] + [{"k": "v"}, ["x", 2**40]]))
    # The old writer numbered the link without the Strings, Float and Bignum before: a link to
    # the wrong objects (here the String and the Float), as Ruby's reader and marshal_reader number them.
    assert load_bounded(reference_dumps(value))[5:] == ["a string first", 1.5]
