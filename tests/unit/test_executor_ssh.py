"""The master's recipes and autosign tokens go over SSH with its console host key pinned (every cloud)."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import paramiko
import pytest

from drbootstrap.executor import steps
from drbootstrap.executor.context import NodeRuntime
from drbootstrap.executor.ssh_access import SshNodeAccess
from drbootstrap.providers.operator_key import load_or_create_operator_key
from drbootstrap.ssh import HostKeyMismatchError, SshSession
from tests.unit.executor_fakes import (
    FakeBroker,
    FakeCloud,
    load_spec_text,
    make_context,
    make_provider,
)

PINNED_BLOB = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))).decode()
OFFERED_BLOB = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(100, 132))


class LocalConsoleDriver:
    """Like the local cloud's driver: no console-output call, the console log's path in node.extra."""

    name = "local"

    def __init__(self, console_log) -> None:
        self.node = SimpleNamespace(id="n-1", name="controller", public_ips=[], private_ips=["10.213.0.2"],
                                    extra={"console_log": str(console_log)})

    def list_nodes(self, ex_node_ids=None):
        return [self.node] if ex_node_ids == ["n-1"] else []


class OfferedKey:
    """What a server presents as its host key (only what the pinning policy reads)."""

    def asbytes(self) -> bytes:
        return OFFERED_BLOB

    def get_name(self) -> str:
        return "ssh-ed25519"


@pytest.fixture
def forged_master(monkeypatch, tmp_path):
    """An SSH server at the master's address that offers a host key other than its console printed."""
    console = tmp_path / "console.log"
    console.write_text(f"boot\n-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 {PINNED_BLOB} root@controller\n"
                       "-----END SSH HOST KEY KEYS-----\n")

    def connect(client, hostname, **kwargs):
        client._policy.missing_host_key(client, hostname, OfferedKey())

    pushed: list[str] = []
    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    monkeypatch.setattr(SshSession, "push_tree", lambda self, local, remote, **kw: pushed.append(remote) or 1)
    monkeypatch.setattr(SshSession, "run", lambda self, command, timeout=None: pushed.append(command))
    return LocalConsoleDriver(console), pushed


def test_a_master_offering_another_host_key_fails_the_services_step_and_gets_nothing(forged_master, monkeypatch,
                                                                                    tmp_path):
    driver, pushed = forged_master
    key = tmp_path / "state" / "ssh-key.pem"
    load_or_create_operator_key(key)
    spec = load_spec_text(monkeypatch)
    access = SshNodeAccess(make_provider(spec, tmp_path / "state", driver))
    ctx = make_context(spec, tmp_path / "state", FakeCloud(), FakeBroker(FakeCloud()), access)
    ctx.recipes_dir = tmp_path / "recipes"
    (ctx.recipes_dir / "manifests").mkdir(parents=True)
    master = NodeRuntime(planned=ctx.plan.master, provider_node=driver.node, address="10.213.0.2")
    with pytest.raises(HostKeyMismatchError) as refused:
        steps.services(ctx, master)
    message = refused.value.message
    assert "SSH host key of controller (10.213.0.2:22) does not match" in message and "\n" not in message
    assert "refusing to connect" in message
    with pytest.raises(HostKeyMismatchError):
        access.arm_autosign("n-1", "db01.demo.internal", "a" * 64)
    assert pushed == []


def test_the_push_detail_names_ssh_and_the_pinned_fingerprint(forged_master, monkeypatch, tmp_path):
    driver, pushed = forged_master
    monkeypatch.setattr(paramiko.SSHClient, "connect", lambda client, hostname, **kwargs: None)
    key = tmp_path / "ssh-key.pem"
    load_or_create_operator_key(key)
    access = SshNodeAccess(make_provider(load_spec_text(monkeypatch), tmp_path, driver),
                           dirs_for=lambda host: {"node_dir": f"/state/{host}/var", "config_dir": f"/state/{host}/etc"})
    recipes = tmp_path / "recipes"
    (recipes / "manifests").mkdir(parents=True)
    detail = access.push_recipes("n-1", recipes)
    assert pushed == ["/state/controller/var/puppet/code/environments/production"]
    assert "pushed over SSH to controller (10.213.0.2:22)" in detail and "SHA256:" in detail


def test_operator_key_is_made_once_0600_and_its_public_line_is_stable(tmp_path):
    key = tmp_path / "env" / "ssh-key.pem"
    first = load_or_create_operator_key(key)
    assert first.startswith("ssh-ed25519 AAAA") and key.stat().st_mode & 0o777 == 0o600
    assert load_or_create_operator_key(key) == first
    assert paramiko.PKey.from_path(key).get_name() == "ssh-ed25519"


def test_signing_uses_the_masters_own_puppet_conf_and_quotes_the_certname(forged_master, monkeypatch, tmp_path):
    driver, _ = forged_master
    access = SshNodeAccess(make_provider(load_spec_text(monkeypatch), tmp_path, driver),
                           dirs_for=lambda host: {"node_dir": f"/state/{host} dir/var"})
    ran = []
    monkeypatch.setattr(access, "target", lambda node_id: SimpleNamespace(name="controller"))
    monkeypatch.setattr(access, "run", lambda node_id, command, timeout: ran.append(command) or (0, ""))
    access.sign_certificate("n-1", "db01.demo.internal; touch /tmp/pwned")
    assert ran == ["puppetserver ca sign --config '/state/controller dir/var/puppet/puppet.conf' "
                   "--certname 'db01.demo.internal; touch /tmp/pwned'"]


def test_the_local_clouds_access_signs_through_the_one_ssh_path(monkeypatch, tmp_path):
    from drbootstrap.executor.backends import LocalNodeAccess

    signed = []
    monkeypatch.setattr(SshNodeAccess, "sign_certificate", lambda self, master_id, certname: signed.append(
        (master_id, certname, self.node_dirs("controller")["node_dir"])))
    provider = make_provider(load_spec_text(monkeypatch), tmp_path, FakeCloud())
    access = LocalNodeAccess(provider, tmp_path / "nodes", tmp_path / "images", tmp_path / "recipes",
                             master_hostname="controller")
    access.sign_certificate("n-1", "db01.demo.internal")
    assert signed == [("n-1", "db01.demo.internal", str(tmp_path / "nodes" / "controller" / "var"))]


def test_a_real_clouds_nodes_get_the_operators_public_key_so_their_sshd_starts(monkeypatch, tmp_path):
    from drbootstrap.executor.userdata import user_data_for

    spec = load_spec_text(monkeypatch)
    provider = make_provider(spec, tmp_path / "state", LocalConsoleDriver(""))
    access = SshNodeAccess(provider)
    public = provider.operator_public_key().strip()
    assert access.node_dirs("controller") == {"ssh_authorized_keys": (public,)}
    ctx = make_context(spec, tmp_path / "state", FakeCloud(), FakeBroker(FakeCloud()), access)
    text = user_data_for(ctx, NodeRuntime(planned=ctx.plan.master, provider_node=None))
    assert public.split()[1] in text and "authorized_keys" in text
