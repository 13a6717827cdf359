"""Pushing recipes to a node over SSH with a pinned host key, against a real sshd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drbootstrap.ssh import (
    HostKeyMismatchError,
    SshAuthError,
    SshSession,
    SshTarget,
    SshUnreachable,
    parse_console_host_keys,
    parse_host_key_line,
    push_tree,
    run_command,
)
from tests.support.prereq import require_binary, require_root
from tests.support.server_process import free_port
from tests.support.sshd import SshServer, generate_key

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    require_root()
    require_binary("sshd", "ssh-keygen")
    with SshServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def target_for(server: SshServer, **overrides) -> SshTarget:
    values = dict(
        host=server.host, port=server.port, name="controller",
        pinned_keys=parse_console_host_keys(server.console_output()),
        private_key_path=server.client_key, timeout=5.0,
    )
    values.update(overrides)
    return SshTarget(**values)


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "manifests/site.pp": b"node default { include role::web }\n",
        "modules/role/manifests/web.pp": b"class role::web { }\n",
        "modules/role/files/blob.bin": bytes(range(256)) * 64,
        "config/empty": b"",
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "config" / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "config" / "run.sh", 0o750)
    files["config/run.sh"] = b"#!/bin/sh\necho hi\n"
    return files


def test_pushed_tree_arrives_byte_identical_with_permissions(sshd, tmp_path):
    source = tmp_path / "recipes"
    files = make_tree(source)
    remote = tmp_path / "on-master" / "etc" / "drbootstrap" / "recipes"

    count = push_tree(target_for(sshd), source, str(remote))

    assert count == len(files)
    for relative, data in files.items():
        assert (remote / relative).read_bytes() == data
    assert (remote / "config" / "run.sh").stat().st_mode & 0o777 == 0o750


def test_replacing_push_swaps_in_the_new_tree_and_drops_files_deleted_locally(sshd, tmp_path):
    source = tmp_path / "recipes"
    files = make_tree(source)
    remote = tmp_path / "on-master" / "recipes"
    push_tree(target_for(sshd), source, str(remote), replace=True)
    (source / "config" / "empty").unlink()
    (source / "manifests" / "site.pp").write_bytes(b"node default { }\n")

    push_tree(target_for(sshd), source, str(remote), replace=True)

    assert not (remote / "config" / "empty").exists()
    assert (remote / "manifests" / "site.pp").read_bytes() == b"node default { }\n"
    assert (remote / "modules/role/files/blob.bin").read_bytes() == files["modules/role/files/blob.bin"]
    assert sorted(p.name for p in remote.parent.iterdir()) == ["recipes"]  # no staging or retired trees left


def test_command_returns_exit_status_and_output(sshd):
    result = run_command(target_for(sshd), "echo out; echo err >&2; exit 3")

    assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_wrong_pinned_key_is_refused_naming_both_fingerprints_and_nothing_is_pushed(sshd, tmp_path):
    other_line = generate_key(tmp_path / "impostor_key")
    wrong = parse_host_key_line(other_line)
    source = tmp_path / "recipes"
    make_tree(source)
    remote = tmp_path / "must-not-exist"

    with pytest.raises(HostKeyMismatchError) as refused:
        push_tree(target_for(sshd, pinned_keys=(wrong,)), source, str(remote))

    message = str(refused.value)
    assert wrong.fingerprint in message
    assert parse_host_key_line(sshd.host_key_line).fingerprint in message
    assert "\n" not in message and "PRIVATE" not in message
    assert not remote.exists()


def test_pinned_key_of_a_type_the_server_lacks_is_refused(sshd, tmp_path):
    rsa_line = generate_key(tmp_path / "rsa_key", "rsa")

    with pytest.raises(HostKeyMismatchError, match="offered no key of a pinned type"):
        with SshSession(target_for(sshd, pinned_keys=(parse_host_key_line(rsa_line),))):
            pass


def test_unauthorised_client_key_is_refused_clearly(sshd, tmp_path):
    generate_key(tmp_path / "stranger")

    with pytest.raises(SshAuthError, match="refused the client key for user root"):
        run_command(target_for(sshd, private_key_path=tmp_path / "stranger"), "true")


def test_nothing_listening_is_reported_as_unreachable(sshd):
    with pytest.raises(SshUnreachable, match=r"cannot connect to SSH at controller \(127\.0\.0\.1:\d+\)"):
        run_command(target_for(sshd, port=free_port()), "true")
