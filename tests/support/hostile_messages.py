"""Hostile request bodies shared by the unit tests and the integration attack on a running agent."""

from __future__ import annotations

import json
import time
import uuid

from drbootstrap.messaging import ruby_marshal as rm
from drbootstrap.messaging.envelope import Filter, Request
from drbootstrap.messaging.mcollective import McollectiveProtocol, psk_digest
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.ruby_marshal import Sym

CATASTROPHIC_REGEX = "/^((.*.*)*)*!/"  # 13 characters; Python's re backtracks for ever on it


def _long(value: int) -> bytes:
    if value == 0:
        return b"\x00"
    if 0 < value < 123:
        return bytes([value + 5])
    return b"\x01" + bytes([value]) if value < 256 else b"\x02" + value.to_bytes(2, "little")


def link_bomb(depth: int = 40) -> bytes:
    """Marshal of {[[..[s, @s]..], @..] => nil}: each level an array of a value and a link to it,
    so 2**depth paths in a few bytes per level (168 bytes for depth 40)."""

    def level(k: int) -> bytes:
        if k == 0:
            return b'"\x06a'
        return b"[\x07" + level(k - 1) + b"@" + _long(depth - k + 2)

    return b"\x04\x08{\x06" + level(depth) + b"0"


def wide_link_bomb(width: int = 250) -> bytes:
    """A shallow variant: [[x * width], @1 * width] - width**2 values after expansion."""
    inner = b"[" + _long(width) + b"i\x06" * width
    return b"\x04\x08[" + _long(width + 1) + inner + (b"@" + _long(1)) * width


def deep_json_array(depth: int = 100_000) -> bytes:
    return b"[" * depth + b"]" * depth


def native_request(reply_to: str, *, identity_filter: tuple[str, ...] = (), **overrides) -> Request:
    values = dict(request_id=uuid.uuid4().hex, sender_id="attacker", caller_id="", agent="rpcutil", action="ping",
                  data={}, created_at=time.time(), reply_to=reply_to, filter=Filter(identity=identity_filter))
    values.update(overrides)
    return Request(**values)


def resigned_native(protocol: NativeProtocol, request: Request, body_changes: dict) -> bytes:
    """A request signed with `protocol`'s key whose signed body was edited (NaN times, bad shapes)."""
    frame = protocol.request_frames(request)[0]
    envelope = json.loads(frame.body)
    body = json.loads(envelope["body"])
    body.update(body_changes)
    envelope["body"] = json.dumps(body)  # json writes NaN, and the agent must cope with it
    envelope["sig"] = protocol.signer.sign(envelope["body"].encode())
    return json.dumps(envelope).encode()


def rewrapped_mcollective(sniffed: bytes, **envelope_changes) -> bytes:
    """A sniffed mcollective request with unsigned envelope fields changed (the psk covers the body only)."""
    envelope = rm.loads_raw(sniffed)
    for key, value in envelope_changes.items():
        envelope[Sym(key)] = value
    return rm.dumps(envelope)


def shared_bomb(depth: int = 40) -> list:
    """[x, x] nested `depth` times with shared references: Marshal writes the repeats as links."""
    value: object = "a"
    for _ in range(depth):
        value = [value, value]
    return value  # type: ignore[return-value]


def mcollective_with_envelope_bomb(sniffed: bytes) -> bytes:
    """A sniffed request whose envelope gains a key the psk does not cover, holding a link bomb."""
    envelope = rm.loads_raw(sniffed)
    envelope[Sym("x")] = shared_bomb()
    return rm.dumps(envelope)


def signed_mcollective_body(protocol: McollectiveProtocol, psk: str, body: bytes, sniffed: bytes) -> bytes:
    return rewrapped_mcollective(sniffed, body=body, hash=rm.AsciiStr(psk_digest(body, psk)))
