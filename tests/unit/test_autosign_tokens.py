"""Policy autosign with one-time tokens, checked with real CSRs made by `cryptography`."""

from __future__ import annotations

import io
import os
import stat
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AttributeOID, NameOID

from drbootstrap.images import autosign
from drbootstrap.images.autosign import (
    AutosignError,
    challenge_password,
    decide,
    issue_token,
    new_token,
    record_token_digest,
    token_digest,
)


def make_csr(certname: str, token: str | None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, certname)])
    )
    if token is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, token.encode())
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def tokens_file(tmp_path):
    return tmp_path / "etc" / "autosign-tokens.json"


def test_csr_with_the_token_issued_for_its_certname_is_accepted(tokens_file):
    token = issue_token(tokens_file, "web01.demo.internal")

    decision = decide(tokens_file, "web01.demo.internal", make_csr("web01.demo.internal", token))

    assert decision.accepted, decision.reason


def test_wrong_token_is_refused(tokens_file):
    issue_token(tokens_file, "web01.demo.internal")

    decision = decide(tokens_file, "web01.demo.internal", make_csr("web01.demo.internal", "guessed"))

    assert not decision.accepted
    assert "does not match" in decision.reason


def test_token_of_another_node_is_refused(tokens_file):
    issue_token(tokens_file, "web01.demo.internal")
    db_token = issue_token(tokens_file, "db01.demo.internal")

    decision = decide(tokens_file, "web01.demo.internal", make_csr("web01.demo.internal", db_token))

    assert not decision.accepted
    assert decide(tokens_file, "db01.demo.internal", make_csr("db01.demo.internal", db_token)).accepted


def test_used_token_is_burnt_and_refused_the_second_time(tokens_file):
    token = issue_token(tokens_file, "mail01.demo.internal")
    assert decide(tokens_file, "mail01.demo.internal", make_csr("mail01.demo.internal", token)).accepted

    again = decide(tokens_file, "mail01.demo.internal", make_csr("mail01.demo.internal", token))

    assert not again.accepted
    assert "no unused token" in again.reason


def test_csr_for_another_name_than_the_certname_is_refused(tokens_file):
    token = issue_token(tokens_file, "web01.demo.internal")

    decision = decide(tokens_file, "web01.demo.internal", make_csr("evil.demo.internal", token))

    assert not decision.accepted
    assert decide(tokens_file, "web01.demo.internal", make_csr("web01.demo.internal", token)).accepted


def test_csr_without_challenge_password_is_refused(tokens_file):
    issue_token(tokens_file, "web01.demo.internal")

    assert not decide(tokens_file, "web01.demo.internal", make_csr("web01.demo.internal", None)).accepted


def test_tokens_file_is_private_and_holds_no_token(tokens_file):
    token = issue_token(tokens_file, "web01.demo.internal")

    assert stat.S_IMODE(os.stat(tokens_file).st_mode) == 0o600
    assert token not in tokens_file.read_text()


def test_token_made_by_the_controller_is_armed_on_the_master_by_its_digest_alone(tokens_file):
    token = new_token()
    record_token_digest(tokens_file, "db01.demo.internal", token_digest(token))

    assert decide(tokens_file, "db01.demo.internal", make_csr("db01.demo.internal", token)).accepted


def test_a_digest_that_is_not_sha256_hex_is_refused(tokens_file):
    with pytest.raises(AutosignError, match="not a SHA-256 hex digest"):
        record_token_digest(tokens_file, "db01.demo.internal", "plain-token")


def test_challenge_password_is_read_from_the_csr_attribute():
    assert challenge_password(make_csr("n", "s3cret")) == "s3cret"


def test_main_follows_puppetserver_contract_exit_0_signs_1_refuses(tokens_file, monkeypatch, capsys):
    token = issue_token(tokens_file, "db01.demo.internal")
    monkeypatch.setenv(autosign.TOKENS_FILE_VARIABLE, str(tokens_file))

    def run(certname: str, csr: bytes) -> int:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(csr)))
        return autosign.main([certname])

    assert run("db01.demo.internal", make_csr("db01.demo.internal", "nope")) == 1
    assert run("db01.demo.internal", make_csr("db01.demo.internal", token)) == 0
    assert token not in capsys.readouterr().err
