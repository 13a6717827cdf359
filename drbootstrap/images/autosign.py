"""Policy-based Puppet autosign with one-time tokens: puppetserver runs this with the certname
as argument and the CSR on stdin; exit 0 signs, anything else refuses.

A token is issued for one certname, travels only in that node's user-data (as the CSR's
challengePassword), and is burnt when used. The master keeps only SHA-256 digests, in a 0600 file.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import AttributeOID, NameOID

from drbootstrap.errors import DrbError
from drbootstrap.paths import write_private_file

DEFAULT_TOKENS_FILE = Path("/etc/drbootstrap/autosign-tokens.json")
TOKENS_FILE_VARIABLE = "DRB_AUTOSIGN_TOKENS"


class AutosignError(DrbError):
    """The tokens file cannot be read or written."""


@dataclass(frozen=True)
class AutosignDecision:
    accepted: bool
    reason: str  # one line for puppetserver's log; never the token


def new_token() -> str:
    """A fresh one-time token (put it in exactly one node's user-data)."""
    return secrets.token_urlsafe(24)


def token_digest(token: str) -> str:
    """What the master stores for a token: the controller can send this instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


@contextmanager
def _locked_tokens(tokens_file: Path) -> Iterator[dict[str, str]]:
    """The certname -> token digest map, under an exclusive lock; saved (0600) when the block ends."""
    tokens_file.parent.mkdir(parents=True, exist_ok=True)
    lock_path = tokens_file.with_name(tokens_file.name + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two CSRs at once must not both spend one token
        try:
            tokens = json.loads(tokens_file.read_text()) if tokens_file.exists() else {}
        except (OSError, ValueError) as error:
            raise AutosignError(
                f"cannot read autosign tokens {tokens_file}: {type(error).__name__}",
                hint="re-issue the tokens for the nodes still waiting",
            ) from None
        before = dict(tokens)
        yield tokens
        if tokens != before:
            write_private_file(tokens_file, json.dumps(tokens, indent=1, sort_keys=True) + "\n")


def record_token_digest(tokens_file: Path, certname: str, digest: str) -> None:
    """Arm CERTNAME's one-time token on the master, given only its digest (replaces an unused one)."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise AutosignError(f"autosign token digest for {certname} is not a SHA-256 hex digest")
    with _locked_tokens(tokens_file) as tokens:
        tokens[certname] = digest


def issue_token(tokens_file: Path, certname: str) -> str:
    """A new one-time token for CERTNAME, armed in TOKENS_FILE; put it in that node's user-data."""
    token = new_token()
    record_token_digest(tokens_file, certname, token_digest(token))
    return token


def revoke_token(tokens_file: Path, certname: str) -> None:
    with _locked_tokens(tokens_file) as tokens:
        tokens.pop(certname, None)


def challenge_password(csr_pem: bytes) -> str | None:
    """The CSR's challengePassword attribute (OID 1.2.840.113549.1.9.7), or None."""
    csr = x509.load_pem_x509_csr(csr_pem)
    try:
        value = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    except x509.AttributeNotFound:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def decide(tokens_file: Path, certname: str, csr_pem: bytes) -> AutosignDecision:
    """Accept CSR_PEM for CERTNAME only with that certname's unused token; burn it on success."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        return AutosignDecision(False, f"{certname}: the request is not a PEM CSR")
    if not csr.is_signature_valid:
        return AutosignDecision(False, f"{certname}: the CSR signature is invalid")
    common_names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if common_names != [certname]:
        return AutosignDecision(False, f"{certname}: the CSR is for {common_names}, not this certname")
    offered = challenge_password(csr_pem)
    if not offered:
        return AutosignDecision(False, f"{certname}: the CSR carries no challengePassword token")
    with _locked_tokens(tokens_file) as tokens:
        expected = tokens.get(certname)
        if expected is None:
            return AutosignDecision(False, f"{certname}: no unused token was issued for this certname")
        if not hmac.compare_digest(expected, token_digest(offered)):
            return AutosignDecision(False, f"{certname}: the token does not match the one issued for this certname")
        del tokens[certname]  # burnt: a replayed CSR or a copied token signs nothing more
    return AutosignDecision(True, f"{certname}: token accepted and burnt")


def main(argv: list[str] | None = None) -> int:
    """puppetserver's `autosign = <this>` contract: certname in argv, CSR on stdin, exit 0 to sign."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: autosign CERTNAME < CSR", file=sys.stderr)
        return 2
    tokens_file = Path(os.environ.get(TOKENS_FILE_VARIABLE) or DEFAULT_TOKENS_FILE)
    try:
        decision = decide(tokens_file, args[0], sys.stdin.buffer.read())
    except DrbError as error:
        print(f"drbootstrap autosign: {error}", file=sys.stderr)
        return 1
    print(f"drbootstrap autosign: {decision.reason}", file=sys.stderr)
    return 0 if decision.accepted else 1


if __name__ == "__main__":
    sys.exit(main())
