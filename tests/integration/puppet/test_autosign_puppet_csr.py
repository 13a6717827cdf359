"""A CSR made by Puppet's own code from a csr_attributes.yaml (as worker/boot.sh writes it) is
signed by the autosign policy exactly once, and refused for another certname."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from drbootstrap.images.autosign import decide, issue_token
from tests.support.prereq import require_binary

pytestmark = pytest.mark.integration

# Puppet 7's agent builds its CSR with this provider call; it reads csr_attributes.yaml from confdir.
MAKE_CSR = (
    "require 'puppet'; Puppet.initialize_settings(ARGV); key = OpenSSL::PKey::RSA.new(2048); "
    "puts Puppet::X509::CertProvider.new.create_request(Puppet[:certname], key).to_pem"
)


def puppet_csr(base: Path, certname: str, token: str) -> bytes:
    confdir = base / "conf"
    confdir.mkdir(parents=True)
    # The same mapping worker/boot.sh writes (its integration test checks the file parses to this).
    (confdir / "csr_attributes.yaml").write_text(
        yaml.safe_dump({"custom_attributes": {"1.2.840.113549.1.9.7": token}})
    )
    command = ["ruby", "-e", MAKE_CSR, "--", "--confdir", str(confdir), "--vardir", str(base / "var"),
               "--certname", certname]
    result = subprocess.run(command, capture_output=True, timeout=120, cwd=base)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_puppet_made_csr_with_its_token_is_signed_once_and_not_for_another_certname(tmp_path):
    require_binary("ruby", "puppet")
    tokens = tmp_path / "autosign-tokens.json"
    token = issue_token(tokens, "web01.drb-test.internal")
    issue_token(tokens, "web02.drb-test.internal")
    csr = puppet_csr(tmp_path / "web01", "web01.drb-test.internal", token)

    assert not decide(tokens, "web02.drb-test.internal", csr).accepted  # someone else's certname
    assert decide(tokens, "web01.drb-test.internal", csr).accepted
    assert not decide(tokens, "web01.drb-test.internal", csr).accepted  # burnt
