"""Every node's user-data carries the operator's public key: read once per run, not once per node
(loading the private key checks it, which for RSA costs CPU that launch threads would wait on)."""

from types import SimpleNamespace

from drbootstrap.executor.ssh_access import SshNodeAccess


def test_the_operator_public_key_is_read_once_for_every_node() -> None:
    calls = []

    def operator_public_key() -> str:
        calls.append(1)
        return "ssh-rsa AAAA operator"

    access = SshNodeAccess(SimpleNamespace(operator_public_key=operator_public_key))  # type: ignore[arg-type]
    dirs = [access.node_dirs(f"web{i:02d}") for i in range(50)]
    assert all(d == {"ssh_authorized_keys": ("ssh-rsa AAAA operator",)} for d in dirs)
    assert len(calls) == 1
