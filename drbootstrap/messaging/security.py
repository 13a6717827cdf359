"""Signing, TTL, size and authorisation checks shared by both ends (the replay cache is replay.py).

Keys: a pre-shared HMAC-SHA256 key (every holder is equal), or ed25519 (each party signs with its
own private key; receivers trust a set of public keys by key id). Secrets never reach a log line.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from drbootstrap.errors import SecurityError
from drbootstrap.messaging.replay import ReplayCache  # noqa: F401 - it lived here; still importable

if TYPE_CHECKING:  # cryptography is imported when a key is loaded
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

log = logging.getLogger("drbootstrap.security")

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
DEFAULT_CLOCK_SKEW = 30.0
DEFAULT_MAX_TTL = 900.0  # mco and drbootstrap send 60; a longer-lived request is refused


class Signer(Protocol):
    key_id: str
    scheme: str

    def sign(self, data: bytes) -> str: ...

    def verify(self, key_id: str, data: bytes, signature: str) -> None:
        """Raise SecurityError unless `signature` over `data` is valid for `key_id`."""


@dataclass
class HmacSigner:
    """HMAC-SHA256 with a pre-shared key; the key id names the key, never reveals it."""

    key: bytes = field(repr=False)
    key_id: str = "psk"
    scheme: str = "hmac-sha256"

    def sign(self, data: bytes) -> str:
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()

    def verify(self, key_id: str, data: bytes, signature: str) -> None:
        if key_id != self.key_id:
            raise SecurityError(f"message signed with unknown key id {key_id[:80]!r}")
        if not hmac.compare_digest(self.sign(data), str(signature)):
            raise SecurityError("bad signature")


@dataclass
class Ed25519Signer:
    """Signs with our private key; verifies against trusted public keys by key id."""

    private_key: Ed25519PrivateKey = field(repr=False)
    key_id: str
    trusted: dict[str, object] = field(default_factory=dict, repr=False)  # key id -> public key
    scheme: str = "ed25519"

    def sign(self, data: bytes) -> str:
        return self.private_key.sign(data).hex()

    def verify(self, key_id: str, data: bytes, signature: str) -> None:
        from cryptography.exceptions import InvalidSignature

        public = self.trusted.get(key_id)
        if public is None:
            raise SecurityError(f"message signed with untrusted key id {key_id[:80]!r}")
        try:
            # Any PEM public key may sit in the trusted directory; ed25519's verify takes (signature, data).
            public.verify(bytes.fromhex(signature), data)  # type: ignore[attr-defined]
        except (InvalidSignature, ValueError) as error:
            raise SecurityError("bad signature") from error


def load_signer(key_file: Path, *, key_id: str | None = None, trusted_dir: Path | None = None) -> Signer:
    """A signer from a key file: a PEM ed25519 private key, else the file's bytes as an HMAC key.

    For ed25519, trusted_dir holds `<key id>.pub` PEM public keys of the parties we accept
    (our own public key is always trusted).
    """
    try:
        raw = key_file.read_bytes()
    except OSError as error:
        raise SecurityError(
            f"cannot read key file {key_file}: {error.strerror}", hint="pass --key-file or set key_file in the config"
        ) from error
    if b"BEGIN PRIVATE KEY" in raw:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private = serialization.load_pem_private_key(raw, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise SecurityError(
                f"{key_file} is not an ed25519 private key", hint="generate one with drbootstrap's keygen"
            )
        own_id = key_id or key_file.stem
        trusted: dict[str, object] = {own_id: private.public_key()}
        if trusted_dir is not None and trusted_dir.is_dir():
            for pub in sorted(trusted_dir.glob("*.pub")):
                trusted[pub.stem] = serialization.load_pem_public_key(pub.read_bytes())
        return Ed25519Signer(private, own_id, trusted)
    key = raw.strip()
    if len(key) < 16:
        raise SecurityError(f"pre-shared key in {key_file} is shorter than 16 bytes", hint="use a longer random key")
    return HmacSigner(key, key_id or "psk")


def generate_ed25519_key(private_path: Path, public_path: Path | None = None) -> Path:
    """Write a new ed25519 private key (0600 PEM) and its public key (`<stem>.pub`); returns the .pub path.

    Copy the .pub into the other side's trusted_keys_dir; the file stem is the key id.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from drbootstrap.paths import write_private_file

    key = Ed25519PrivateKey.generate()
    write_private_file(
        private_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    public_path = public_path or private_path.with_suffix(".pub")
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return public_path


def check_ttl(
    created_at: float, ttl: float, *, skew: float, now: float | None = None, max_ttl: float = DEFAULT_MAX_TTL
) -> None:
    """Refuse a message older than its TTL (plus skew), dated in the future (beyond skew), or
    whose time or TTL is not a finite number in bounds (NaN compares false with everything, so
    it would pass the two comparisons below and poison the replay cache's ordering)."""
    now = time.time() if now is None else now
    if isinstance(created_at, bool) or isinstance(ttl, bool) or not isinstance(created_at, (int, float)) \
            or not isinstance(ttl, (int, float)) or not math.isfinite(created_at) or not math.isfinite(ttl):
        raise SecurityError("message time or ttl is not a finite number")
    if not 0 < ttl <= max_ttl:
        raise SecurityError(f"message ttl {ttl:.0f}s out of bounds (1 to {max_ttl:.0f}s)")
    if created_at - now > skew:
        raise SecurityError(f"message dated {created_at - now:.0f}s in the future (allowed skew {skew:.0f}s)")
    if now - created_at > ttl + skew:
        raise SecurityError(f"message expired {now - created_at - ttl:.0f}s ago (ttl {ttl:.0f}s)")


@dataclass(frozen=True)
class PolicyRule:
    caller: str = "*"  # glob over caller ids such as "key=ops"
    agent: str = "*"
    action: str = "*"
    allow: bool = True


@dataclass
class AuthorizationPolicy:
    """First matching rule decides; no rules at all means every verified key holder may call all."""

    rules: list[PolicyRule] = field(default_factory=list)
    default_allow: bool = True

    def allows(self, caller_id: str, agent: str, action: str) -> bool:
        for rule in self.rules:
            if (
                fnmatch.fnmatchcase(caller_id, rule.caller)
                and fnmatch.fnmatchcase(agent, rule.agent)
                and fnmatch.fnmatchcase(action, rule.action)
            ):
                return rule.allow
        return self.default_allow if not self.rules else False

    @classmethod
    def from_config(cls, entries: list[dict] | None) -> AuthorizationPolicy:
        if not entries:
            return cls()
        rules = []
        for entry in entries:
            unknown = set(entry) - {"caller", "agent", "action", "allow"}
            if unknown:
                raise SecurityError(
                    f"policy rule has unknown keys {sorted(unknown)}", hint="use caller, agent, action, allow"
                )
            rules.append(PolicyRule(**entry))
        return cls(rules)


def replay_expiry(created_at: float, ttl: float, skew: float) -> float:
    """Until when a receiver must remember a request id: past the last moment its TTL accepts it."""
    return created_at + ttl + 2 * skew


def check_size(body: bytes, limit: int) -> None:
    if len(body) > limit:
        raise SecurityError(f"message of {len(body)} bytes exceeds the {limit}-byte limit")
