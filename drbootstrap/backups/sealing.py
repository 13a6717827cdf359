"""Encryption at rest of a dump (`buckets.encryption_key`): AES-256-GCM, chunk by chunk, with a
fresh data key per dump wrapped by the spec's key (envelope encryption). Shared by the controller,
which seals a dump as it streams it to the bucket, and the node's dumps agent, which opens it as it
downloads, given that one dump's data key: the spec's key never leaves the controller.

A sealed object: MAGIC, an 8-byte nonce prefix, then frames of a 4-byte big-endian length and an
AES-GCM ciphertext whose nonce is the prefix and the frame's 4-byte index, and whose associated
data says whether it is the last frame, so that a reordered, truncated or altered object fails.
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Iterator

from drbootstrap.errors import DrbError

MAGIC = b"DRBSEAL1"
PREFIX_BYTES = 8
MAX_FRAME = 1024 * 1024 + 16  # a sealed chunk: at most 1 MiB of plaintext and its tag
_LAST, _MORE = b"last", b"more"


class SealBroken(DrbError):
    """A sealed object does not open: altered, truncated, or another key."""


def parse_key(text: str) -> bytes:
    """The spec's key (buckets.encryption_key), read as remote state reads its own."""
    from drbootstrap.state.sealed import parse_key as parse_sealing_key

    return parse_sealing_key(text, "buckets.encryption_key")


def new_data_key(master: bytes) -> tuple[bytes, str]:
    """A fresh data key for one dump, and it wrapped by MASTER (base64, kept in the dump's record)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data_key, nonce = os.urandom(32), os.urandom(12)
    return data_key, base64.b64encode(nonce + AESGCM(master).encrypt(nonce, data_key, MAGIC)).decode()


def unwrap_data_key(master: bytes, wrapped: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    raw = base64.b64decode(wrapped)
    try:
        return AESGCM(master).decrypt(raw[:12], raw[12:], MAGIC)
    except InvalidTag:
        raise SealBroken("the dump's data key does not open with buckets.encryption_key",
                         hint="the dump was sealed with another key") from None


def seal(chunks: Iterator[tuple[bytes, bool]], data_key: bytes) -> Iterator[bytes]:
    """The sealed object of CHUNKS ((plaintext, is_last) pairs), piece by piece."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead, prefix = AESGCM(data_key), os.urandom(PREFIX_BYTES)
    yield MAGIC + prefix
    for index, (chunk, last) in enumerate(chunks):
        sealed = aead.encrypt(prefix + struct.pack(">I", index), chunk, _LAST if last else _MORE)
        yield struct.pack(">I", len(sealed)) + sealed


class Opener:
    """Opens a sealed object fed in arbitrary pieces; `feed` returns the plaintext ready so far,
    `finish` raises unless the last frame was seen and nothing follows it."""

    def __init__(self, data_key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead, self._buffer, self._prefix = AESGCM(data_key), b"", b""
        self._index, self._done = 0, False

    def feed(self, data: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        self._buffer += data
        out = []
        if not self._prefix:
            if len(self._buffer) < len(MAGIC) + PREFIX_BYTES:
                return b""
            if not self._buffer.startswith(MAGIC):
                raise SealBroken("not a sealed dump")
            self._prefix = self._buffer[len(MAGIC):len(MAGIC) + PREFIX_BYTES]
            self._buffer = self._buffer[len(MAGIC) + PREFIX_BYTES:]
        while len(self._buffer) >= 4:
            (length,) = struct.unpack(">I", self._buffer[:4])
            if self._done or length > MAX_FRAME:
                raise SealBroken("data after the last frame, or a frame too long")
            if len(self._buffer) < 4 + length:
                break
            frame, self._buffer = self._buffer[4:4 + length], self._buffer[4 + length:]
            nonce = self._prefix + struct.pack(">I", self._index)
            for flag in (_MORE, _LAST):
                try:
                    out.append(self._aead.decrypt(nonce, frame, flag))
                    self._done = flag == _LAST
                    break
                except InvalidTag:
                    continue
            else:
                raise SealBroken(f"frame {self._index} does not authenticate")
            self._index += 1
        return b"".join(out)

    def finish(self) -> None:
        if not self._done or self._buffer:
            raise SealBroken("the sealed dump is truncated")
