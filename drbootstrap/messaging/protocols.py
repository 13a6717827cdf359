"""The one place a wire protocol is chosen and built, for the client and the agent alike.

`native` (default): signed JSON; key_file is an ed25519 private key (PEM; per-client keys, the
receivers trust `<key id>.pub` files in trusted_keys_dir) or a shared HMAC key (compatibility).
`mcollective`: MCollective 2.12 interop; key_file holds plugin.psk, which covers the body only.
Either names its destinations for the broker kind (activemq | rabbitmq) through messaging.naming.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drbootstrap.errors import MessagingError, SecurityError
from drbootstrap.messaging.envelope import WireProtocol
from drbootstrap.messaging.naming import check_broker_kind
from drbootstrap.messaging.security import DEFAULT_CLOCK_SKEW, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_TTL

PROTOCOL_NAMES = ("native", "mcollective")


@dataclass(frozen=True)
class ProtocolSettings:
    """What either end's config says about its wire protocol."""

    protocol: str = "native"
    key_file: Path | None = None
    key_id: str | None = None
    trusted_keys_dir: Path | None = None
    clock_skew: float = DEFAULT_CLOCK_SKEW
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_ttl: float = DEFAULT_MAX_TTL
    broker_kind: str = "activemq"  # or "rabbitmq": the broker's own destination naming (messaging.naming)


def make_wire_protocol(settings: ProtocolSettings) -> WireProtocol:
    """The protocol `settings` name, with its key loaded (MCollective's only when asked for)."""
    check_broker_kind(settings.broker_kind)
    if settings.protocol not in PROTOCOL_NAMES:
        raise MessagingError(f"unknown protocol {settings.protocol!r}", hint="set protocol to native or mcollective")
    if settings.protocol == "mcollective":
        from drbootstrap.messaging.mcollective import McollectiveProtocol, load_psk

        if not settings.key_file:
            raise SecurityError("mcollective mode has no psk file", hint="set key_file to a file holding plugin.psk")
        return McollectiveProtocol(
            load_psk(settings.key_file), clock_skew=settings.clock_skew,
            max_message_bytes=settings.max_message_bytes, max_ttl=settings.max_ttl,
            broker_kind=settings.broker_kind,
        )
    from drbootstrap.messaging.native import NativeProtocol
    from drbootstrap.messaging.security import load_signer

    if not settings.key_file:
        raise SecurityError("no key file: every request must be signed", hint="pass --key-file or set key_file")
    signer = load_signer(Path(settings.key_file), key_id=settings.key_id, trusted_dir=settings.trusted_keys_dir)
    return NativeProtocol(
        signer, clock_skew=settings.clock_skew, max_message_bytes=settings.max_message_bytes, max_ttl=settings.max_ttl,
        broker_kind=settings.broker_kind,
    )
