"""The spec's state: block and --state over it; sealing keys at rest (AES-GCM, bound to their name)."""

from __future__ import annotations

import pytest

from drbootstrap.errors import DrbError, SpecError
from drbootstrap.spec import parse_spec
from drbootstrap.state import state_settings
from drbootstrap.state.sealed import SealError, parse_key, seal, unseal

BASE = """environment: prod
domain: prod.internal
provider: {name: local}
"""
S3 = BASE + "state: {backend: s3, bucket: drb-state, endpoint: 'http://127.0.0.1:9000', encryption_key: '${env:K}'}\n"


def test_local_is_the_default_and_s3_reads_its_settings(monkeypatch):
    monkeypatch.setenv("K", "00" * 32)
    assert parse_spec(BASE).state.backend == "local"
    spec = parse_spec(S3)
    assert (spec.state.backend, spec.state.bucket, spec.state.prefix, spec.state.lease_seconds) == (
        "s3", "drb-state", "drbootstrap", 60)
    assert ("state.encryption_key", spec.state.encryption_key) in spec.secret_refs()


@pytest.mark.parametrize("block, says", [
    ("{backend: s3, encryption_key: '${env:K}'}", "needs a bucket"),
    ("{backend: s3, bucket: drb-state}", "needs an encryption_key"),
    ("{backend: s3, bucket: drb-state, encryption_key: 'literal-key'}", "a secret is written in the spec"),
    ("{backend: s3, bucket: drb-state, encryption_key: '${env:K}', lease_seconds: 1}", "must be at least 5"),
    ("{backend: nfs}", "state.backend"),
])
def test_a_bad_state_block_is_refused_located(monkeypatch, block, says):
    monkeypatch.setenv("K", "00" * 32)
    with pytest.raises(SpecError, match=says):
        parse_spec(BASE + f"state: {block}\n", filename="env.yaml")


def test_the_command_line_overrides_the_spec(monkeypatch):
    monkeypatch.setenv("K", "00" * 32)
    spec = parse_spec(S3)
    assert state_settings(spec, "local").backend == "local"
    moved = state_settings(spec, "s3://other-bucket/team/a")
    assert (moved.bucket, moved.prefix, moved.endpoint) == ("other-bucket", "team/a", "http://127.0.0.1:9000")
    with pytest.raises(DrbError, match="encryption_key"):
        state_settings(parse_spec(BASE), "s3://drb-state")
    with pytest.raises(DrbError, match="not local, s3"):
        state_settings(spec, "nfs")


def test_sealed_objects_open_only_with_their_key_and_under_their_name():
    key = parse_key("ab" * 32)
    blob = seal(key, "sealed/psk", b"the secret")
    assert b"the secret" not in blob
    assert unseal(key, "sealed/psk", blob) == b"the secret"
    with pytest.raises(SealError, match="does not open"):
        unseal(key, "sealed/ssh-key.pem", blob)
    with pytest.raises(SealError, match="does not open"):
        unseal(parse_key("cd" * 32), "sealed/psk", blob)
    with pytest.raises(SealError, match="32 bytes") as refused:
        parse_key("too-short-secret")
    assert "too-short-secret" not in str(refused.value)
