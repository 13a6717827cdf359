"""Credential references: resolved from env or file, never shown, literal secrets refused."""

import os
from pathlib import Path

import pytest

from drbootstrap.errors import SpecError
from drbootstrap.spec import SecretRef, SecretResolutionError, load_spec, parse_spec

SPEC = """\
environment: demo
domain: demo.internal
provider:
  name: local
  credentials:
    token: {reference}
nodes:
  - role: db
    hostnames: [db01]
"""


def write_spec(directory: Path, reference: str) -> Path:
    path = directory / "env.yaml"
    path.write_text(SPEC.format(reference=reference))
    return path


def test_env_reference_resolves_and_reveal_returns_the_value(monkeypatch):
    monkeypatch.setenv("DRB_TEST_TOKEN", "s3cr3t-value")
    spec = parse_spec(SPEC.format(reference="${env:DRB_TEST_TOKEN}"))
    assert spec.provider.credentials["token"].reveal() == "s3cr3t-value"


def test_repr_and_str_show_the_reference_never_the_value(monkeypatch):
    monkeypatch.setenv("DRB_TEST_TOKEN", "s3cr3t-value")
    spec = parse_spec(SPEC.format(reference="${env:DRB_TEST_TOKEN}"))
    reference = spec.provider.credentials["token"]
    renderings = (repr(reference), str(reference), repr(spec), str(spec), spec.model_dump_json())
    for rendering in renderings:
        assert "s3cr3t-value" not in rendering
    assert str(reference) == "${env:DRB_TEST_TOKEN}"


def test_file_reference_is_relative_to_the_spec_directory_and_stripped(tmp_path: Path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "token").write_text("from-a-file\n")
    spec = load_spec(write_spec(tmp_path, "${file:keys/token}"))
    assert spec.provider.credentials["token"].reveal() == "from-a-file"


def test_file_reference_expands_the_home_directory(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "token").write_text("at-home")
    assert SecretRef.parse("${file:~/token}").reveal() == "at-home"


def test_unset_env_variable_is_a_located_problem_naming_the_variable(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("DRB_TEST_UNSET", raising=False)
    path = write_spec(tmp_path, "${env:DRB_TEST_UNSET}")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.problems == [
        f"{path}:6:12: provider.credentials.token: environment variable DRB_TEST_UNSET is not set "
        "(export DRB_TEST_UNSET=... before running drbootstrap, or use --skip-secrets)"
    ]


def test_skip_secrets_accepts_unresolvable_references(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("DRB_TEST_UNSET", raising=False)
    spec = load_spec(write_spec(tmp_path, "${env:DRB_TEST_UNSET}"), resolve_secrets=False)
    with pytest.raises(SecretResolutionError):
        spec.provider.credentials["token"].reveal()


def test_empty_env_variable_and_empty_file_are_refused(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DRB_TEST_EMPTY", "  ")
    with pytest.raises(SecretResolutionError, match="is empty"):
        SecretRef.parse("${env:DRB_TEST_EMPTY}").resolve()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretResolutionError, match="is empty"):
        SecretRef.parse("${file:empty}", tmp_path).resolve()


def test_literal_secret_is_refused_without_echoing_it():
    with pytest.raises(SpecError) as caught:
        parse_spec(SPEC.format(reference="AKIAVERYSECRETVALUE"))
    assert "AKIAVERYSECRETVALUE" not in str(caught.value)
    assert "a secret is written in the spec itself" in str(caught.value)


def test_wrongly_typed_secret_is_not_echoed_either():
    with pytest.raises(SpecError) as caught:
        parse_spec(SPEC.format(reference="123456789"))
    assert "123456789" not in str(caught.value)


def test_psk_and_tsig_secret_must_be_references():
    text = SPEC.replace("  credentials:\n    token: {reference}\n", "") + (
        "security:\n  psk: plainpsk\nmaster:\n  dynamic_dns:\n    server: 192.0.2.53\n    zone: demo.internal\n"
        "    tsig_key_name: k\n    tsig_secret: plaintsig\n"
    )
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert len(caught.value.problems) == 2
    assert "plainpsk" not in str(caught.value) and "plaintsig" not in str(caught.value)


def test_a_non_reference_string_parses_to_none():
    assert SecretRef.parse("plain") is None
    assert SecretRef.parse("${vault:x}") is None
    assert SecretRef.parse("${env:X}") == SecretRef("env", "X")


def test_secret_refs_lists_every_reference_with_its_place(monkeypatch):
    monkeypatch.setenv("DRB_TEST_TOKEN", "v")
    spec = parse_spec(SPEC.format(reference="${env:DRB_TEST_TOKEN}"))
    assert [(place, str(ref)) for place, ref in spec.secret_refs()] == [
        ("provider.credentials.token", "${env:DRB_TEST_TOKEN}")
    ]
    assert os.environ["DRB_TEST_TOKEN"] == "v"
