"""The environment's secrets: which signing scheme it uses, the broker PSK (from the spec or
generated 0600 in the state dir) and one-time autosign tokens derived from it, so a resumed launch
re-arms the very same token. The PSK exists under either scheme: the autosign tokens need it.
Over stomp+ssl, the broker CA and the master's issuing CA under it, made once before any launch.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from drbootstrap.paths import EnvironmentPaths, write_private_file
from drbootstrap.spec.models import EnvironmentSpec

if TYPE_CHECKING:
    from drbootstrap.messaging.broker_ca import CertifiedKey

ED25519 = "ed25519"
HMAC_SHA256 = "hmac-sha256"


def signing_scheme(spec: EnvironmentSpec, paths: EnvironmentPaths) -> str:
    """The spec's `security.signing` when given; else ed25519, unless this environment already
    signs with the shared key (its state holds a PSK and no per-client keys) or the spec names a
    PSK: those keep HMAC, so an existing environment's nodes keep understanding the controller."""
    if spec.security.signing is not None:
        return spec.security.signing
    if paths.keys.is_dir():
        return ED25519
    if spec.security.psk is not None or paths.psk.exists():
        return HMAC_SHA256
    return ED25519


def load_or_create_psk(spec: EnvironmentSpec, state_dir: Path) -> str:
    """spec.security.psk when given, else the environment's generated key (made once, 0600)."""
    if spec.security.psk is not None:
        return spec.security.psk.reveal() if hasattr(spec.security.psk, "reveal") else str(spec.security.psk)
    path = EnvironmentPaths(state_dir, spec.environment).psk
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    write_private_file(path, key + "\n")
    return key


def autosign_token(psk: str, environment: str, hostname: str, generation: int) -> str:
    """The node's one-time Puppet token: the same for the same launch, unguessable without the PSK."""
    message = f"autosign\0{environment}\0{hostname}\0{generation}".encode()
    return hmac.new(psk.encode(), message, hashlib.sha256).hexdigest()[:40]


def load_or_create_broker_cookie(paths: EnvironmentPaths) -> str:
    """The broker cluster's Erlang cookie: made once (0600), given to the master and the broker
    nodes in their user-data, never on a command line."""
    if paths.broker_cookie.is_file():
        return paths.broker_cookie.read_text().strip()
    cookie = secrets.token_hex(20)
    write_private_file(paths.broker_cookie, cookie + "\n")
    return cookie


def load_or_create_broker_ca(paths: EnvironmentPaths, environment: str) -> CertifiedKey:
    """The master's issuing CA for the broker's certificate, under the environment's broker CA:
    both made once (keys 0600, the CA's certificate public at paths.broker_ca), before the first
    launch, so that every node's user-data can carry what it needs from the start."""
    from drbootstrap.messaging.broker_ca import CertifiedKey, issue_master_ca, make_environment_ca

    if paths.broker_issuer.is_file() and paths.broker_issuer_key.is_file() and paths.broker_ca.is_file():
        issuer = CertifiedKey(paths.broker_issuer.read_text(), paths.broker_issuer_key.read_text())
        if not paths.broker_ca_chain.is_file():
            paths.broker_ca_chain.write_text(paths.broker_ca.read_text() + issuer.cert_pem)
        return issuer
    ca = make_environment_ca(environment)
    issuer = issue_master_ca(ca, environment)
    write_private_file(paths.broker_ca_key, ca.key_pem)
    write_private_file(paths.broker_issuer_key, issuer.key_pem)
    paths.broker_issuer.write_text(issuer.cert_pem)
    paths.broker_ca_chain.write_text(ca.cert_pem + issuer.cert_pem)
    paths.broker_ca.write_text(ca.cert_pem)  # last: its presence says the set is complete
    return issuer
