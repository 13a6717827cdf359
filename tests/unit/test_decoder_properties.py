"""Property tests of the native and MCollective request decoders: no input crashes them; every
refusal is one SecurityError with a one-line message. Example counts are bounded for CI time;
inputs that once found a problem are kept as explicit examples."""

from __future__ import annotations

import json
import math
import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drbootstrap.errors import SecurityError
from drbootstrap.messaging import ruby_marshal as rm
from drbootstrap.messaging.envelope import Request
from drbootstrap.messaging.mcollective import McollectiveProtocol, psk_digest
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.ruby_marshal import MarshalError, Sym
from drbootstrap.messaging.security import HmacSigner
from tests.support.hostile_messages import deep_json_array, link_bomb, mcollective_with_envelope_bomb, wide_link_bomb

KEY = b"0123456789abcdef0123456789abcdef"
PSK = "property-psk"
BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
REQUEST_KEYS = ["request_id", "sender_id", "caller_id", "agent", "action", "data", "filter", "collective", "ttl",
                "created_at", "reply_to", "targets", "reply_wanted"]


def decodes_or_refuses_cleanly(decode, body: bytes, headers: dict) -> None:
    try:
        result = decode(body, headers)
    except SecurityError as error:
        assert "\n" not in str(error) and 0 < len(str(error)) < 400  # one readable log line
        return
    assert isinstance(result, Request)
    assert math.isfinite(result.created_at) and math.isfinite(result.ttl)


def signed(payload: dict) -> bytes:
    text = json.dumps({"kind": "request", **payload})
    return json.dumps({"v": 1, "kind": "request", "body": text, "sig": HmacSigner(KEY).sign(text.encode()),
                       "key_id": "psk", "scheme": "hmac-sha256"}).encode()


@BOUNDED
@given(st.binary(max_size=4096))
@example(deep_json_array())
@example(b'{"v":1,"kind":"request","body":' + b"[" * 5000)
def test_native_decoder_survives_any_bytes(body):
    decodes_or_refuses_cleanly(NativeProtocol(HmacSigner(KEY)).decode_request, body, {})


@BOUNDED
@given(st.dictionaries(st.sampled_from(REQUEST_KEYS), json_values, max_size=len(REQUEST_KEYS)))
@example({"request_id": "r", "sender_id": "s", "agent": "a", "action": "b", "ttl": 60, "created_at": float("nan"),
          "reply_to": "/queue/drb.mcollective.reply.x"})  # NaN passed the TTL check once
@example({"request_id": "r", "sender_id": "s", "agent": "a", "action": "b", "ttl": 60, "created_at": time.time(),
          "reply_to": "/queue/drb.mcollective.reply.x", "filter": "web01"})  # AttributeError once
def test_native_decoder_survives_any_signed_body(payload):
    decodes_or_refuses_cleanly(NativeProtocol(HmacSigner(KEY)).decode_request, signed(payload), {})


marshal_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=10)
    | st.binary(max_size=10) | st.builds(Sym, st.text(min_size=1, max_size=8)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@BOUNDED
@given(st.binary(max_size=2048))
@example(link_bomb())
@example(wide_link_bomb())
@example(b"\x04\x08[\x04\xff\xff\xff\x7f")  # an element count of 2**31 with nothing behind it
def test_marshal_reader_refuses_or_reads_any_bytes_quickly(data):
    started = time.monotonic()
    try:
        rm.to_python(rm.loads_raw(data))
    except MarshalError:
        pass
    assert time.monotonic() - started < 1.0


@BOUNDED
@given(st.dictionaries(st.sampled_from(["senderid", "requestid", "filter", "collective", "agent", "callerid", "ttl",
                                        "msgtime", "x"]), marshal_values, max_size=9),
       st.one_of(st.just("ping"), marshal_values))
@example({"msgtime": float("nan"), "ttl": 60, "requestid": "r", "senderid": "s", "collective": "mcollective",
          "agent": "discovery", "callerid": "uid=0", "filter": {}}, "ping")
def test_mcollective_decoder_survives_any_psk_valid_envelope(fields, inner):
    body = rm.dumps(inner)
    envelope = {Sym(key): value for key, value in fields.items()}
    envelope[Sym("body")] = body
    envelope[Sym("hash")] = rm.AsciiStr(psk_digest(body, PSK))
    raw = rm.dumps(envelope)
    decodes_or_refuses_cleanly(McollectiveProtocol(PSK).decode_request, raw, {"reply-to": "/queue/x.reply"})
    decodes_or_refuses_cleanly(McollectiveProtocol(PSK).decode_request, raw[: len(raw) // 2], {})


def test_mcollective_decoder_refuses_a_link_bomb_in_an_envelope_key_the_psk_does_not_cover():
    # Kept apart from the property above: hypothesis would print a 2**40-path example on failure.
    ping = (
        McollectiveProtocol(PSK)
        .request_frames(
            Request("r1", "s", "uid=0", "discovery", "ping", created_at=time.time(), reply_to="/queue/x.reply")
        )[0]
        .body
    )
    started = time.monotonic()
    decodes_or_refuses_cleanly(McollectiveProtocol(PSK).decode_request, mcollective_with_envelope_bomb(ping), {})
    assert time.monotonic() - started < 1.0
