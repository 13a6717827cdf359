"""The operator's SSH key for an environment: generated here (never by the cloud), written 0600
before any cloud learns its public half, so no interrupted run can lose the private key."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from drbootstrap.paths import write_private_file

ED25519 = "ed25519"
RSA = "rsa"


def load_or_create_operator_key(private_key_path: Path, algorithm: str = ED25519) -> str:
    """The key at `private_key_path` (made when missing, 0600); returns its OpenSSH public key line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if private_key_path.exists():
        data = private_key_path.read_bytes()
        key = (serialization.load_ssh_private_key(data, password=None) if b"OPENSSH" in data
               else serialization.load_pem_private_key(data, password=None))
    else:
        if algorithm == RSA:
            key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        else:
            key = ed25519.Ed25519PrivateKey.generate()
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        write_private_file(private_key_path, pem.decode())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode() + " drbootstrap-operator"


def public_key_fingerprints(public_key_line: str) -> set[str]:
    """Every form a cloud may report for this public key's fingerprint: MD5 and SHA-256 of the
    OpenSSH blob (RFC 4716; AWS for imported keys), of the DER SubjectPublicKeyInfo (other EC2
    dialects), colon-separated hex or base64."""
    from cryptography.hazmat.primitives import serialization

    blob = base64.b64decode(public_key_line.split()[1])
    key = serialization.load_ssh_public_key(" ".join(public_key_line.split()[:2]).encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    forms = set()
    for data in (blob, der):
        for digest in (hashlib.md5(data, usedforsecurity=False).digest(), hashlib.sha256(data).digest()):
            forms.add(":".join(f"{byte:02x}" for byte in digest))
            forms.add(base64.b64encode(digest).decode().rstrip("="))
    return forms
