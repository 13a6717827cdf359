"""Keys at rest in remote state: sealed with AES-256-GCM under the key the spec references.

The sealing key is never stored beside what it seals: the spec names it (`state.encryption_key`,
an `${env:...}` or `${file:...}` reference). Each object is bound to its name (associated data), so
a sealed file cannot be passed off as another.
"""

from __future__ import annotations

import base64
import binascii
import os

from drbootstrap.errors import DrbError
from drbootstrap.exit_status import ExitStatus

MAGIC = b"DRB-SEALED-1\n"
NONCE_BYTES = 12


class SealError(DrbError):
    """The sealing key is malformed, or a sealed object does not open with it."""

    exit_status = ExitStatus.INVALID_SPEC


def parse_key(text: str, setting: str = "state.encryption_key") -> bytes:
    """A sealing key (SETTING names it in messages: state's, or buckets' for dumps): 32 bytes
    written as 64 hex digits or as base64, a 256-bit key; SealError (never echoing it) otherwise."""
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise SealError(f"{setting} is not a 256-bit key: 32 bytes written as hex or base64",
                        hint="make one with `openssl rand -hex 32` and reference it as ${env:NAME} or ${file:PATH}")
    return raw


def seal(key: bytes, name: str, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, data, name.encode())


def unseal(key: bytes, name: str, blob: bytes) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
        raise SealError(f"state object {name} is not sealed by drbootstrap", hint="restore it from a backup")
    body = blob[len(MAGIC):]
    try:
        return AESGCM(key).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], name.encode())
    except InvalidTag:
        raise SealError(f"state object {name} does not open with state.encryption_key",
                        hint="use the key the environment's keys were sealed with") from None
