"""Pinned SSH host keys: parsing console output and key lines, fingerprints, the policy's refusal."""

from __future__ import annotations

import base64
from pathlib import Path
from unittest import mock

import paramiko
import pytest

from drbootstrap.ssh import (
    HostKeyMismatchError,
    PinnedHostKeyPolicy,
    SshError,
    SshTarget,
    _disabled_host_key_algorithms,
    parse_console_host_keys,
    parse_host_key_line,
    parse_host_keys,
)

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPmfbZj7tv5utK5pM9lkbdA4KUPGzJA0eUcYdfDMpyl5 root@db01"
ED25519_FP = "SHA256:VGPzpiGX4D/w1M2sdbucpHmCEDne2p1OuyxCpyR9HGU"
ECDSA = (
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBKMgMRd5Laj++yHTZ88XglFKyYVEaIiep9YAY/"
    "NB5VIhkStSrxI3QNWxMClelMTraVKbhKCMTyNh6yyEH++HUto= root@db01"
)
ECDSA_FP = "SHA256:rbEIljrReXefToiyLFMueM702V2ow9+VfWExkeebIoE"

CONSOLE = f"""\
[  2.1] cloud-init[300]: Generating public/private ed25519 key pair.
-----BEGIN SSH HOST KEY FINGERPRINTS-----
256 {ED25519_FP} root@db01 (ED25519)
-----END SSH HOST KEY FINGERPRINTS-----
ec2: -----BEGIN SSH HOST KEY KEYS-----
ec2: {ECDSA}
ec2: {ED25519}
ec2: -----END SSH HOST KEY KEYS-----
[  5.3] cloud-init[300]: finished
"""


def test_fingerprint_matches_ssh_keygen():
    assert parse_host_key_line(ED25519).fingerprint == ED25519_FP
    assert parse_host_key_line(ECDSA).fingerprint == ECDSA_FP


def test_known_hosts_style_line_is_accepted():
    assert parse_host_key_line(f"[10.213.0.2]:22 {ED25519}").key_type == "ssh-ed25519"


def test_console_block_yields_every_key_even_with_line_prefixes():
    keys = parse_console_host_keys(CONSOLE)

    assert [k.fingerprint for k in keys] == [ECDSA_FP, ED25519_FP]


def test_console_without_a_complete_block_says_to_wait_for_cloud_init():
    with pytest.raises(SshError, match="no complete SSH HOST KEY KEYS block"):
        parse_console_host_keys(CONSOLE.split("ec2: -----END")[0])


def test_host_keys_from_metadata_lines_or_console_text():
    assert [k.fingerprint for k in parse_host_keys(f"{ED25519}\n{ECDSA}\n")] == [ED25519_FP, ECDSA_FP]
    assert [k.fingerprint for k in parse_host_keys(CONSOLE)] == [ECDSA_FP, ED25519_FP]
    with pytest.raises(SshError, match="no SSH host public key found"):
        parse_host_keys("instance-id: i-123\n")


def test_line_whose_type_disagrees_with_its_data_is_refused():
    forged = ED25519.replace("ssh-ed25519", "ssh-rsa", 1)

    with pytest.raises(SshError, match="says ssh-rsa but its data holds ssh-ed25519"):
        parse_host_key_line(forged)


def test_garbage_is_not_a_key_line():
    with pytest.raises(SshError, match="not an OpenSSH host public key line"):
        parse_host_key_line("hello world")


def target(*lines: str) -> SshTarget:
    return SshTarget(
        "10.213.0.2", tuple(parse_host_key_line(line) for line in lines), Path("/nonexistent"), name="db01"
    )


def test_policy_accepts_the_pinned_key_and_refuses_another_naming_both_fingerprints():
    policy = PinnedHostKeyPolicy(target(ED25519))
    offered_ok = mock.Mock(spec=paramiko.PKey)
    offered_ok.asbytes.return_value = base64.b64decode(ED25519.split()[1])
    policy.missing_host_key(mock.Mock(), "10.213.0.2", offered_ok)

    offered_bad = mock.Mock(spec=paramiko.PKey)
    offered_bad.asbytes.return_value = base64.b64decode(ECDSA.split()[1])
    offered_bad.get_name.return_value = "ecdsa-sha2-nistp256"
    with pytest.raises(HostKeyMismatchError) as refused:
        policy.missing_host_key(mock.Mock(), "10.213.0.2", offered_bad)
    assert f"expected ssh-ed25519 {ED25519_FP}, offered ecdsa-sha2-nistp256 {ECDSA_FP}" in str(refused.value)
    assert "db01 (10.213.0.2:22)" in str(refused.value)


def test_only_the_pinned_key_types_may_be_negotiated():
    disabled = _disabled_host_key_algorithms(target(ED25519).pinned_keys)

    assert "ssh-ed25519" not in disabled
    assert "ecdsa-sha2-nistp256" in disabled and "rsa-sha2-512" in disabled
