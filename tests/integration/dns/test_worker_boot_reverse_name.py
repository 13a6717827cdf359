"""images/worker/boot.sh in a namespace of its own: it learns its name from the master's dnsmasq
by reverse DNS, points its resolver there, and writes the agent and Puppet settings; with the
master's DNS down it waits for it, then boots keeping the name it has."""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import threading
import time

import pytest
import yaml

from drbootstrap.agent.config import load_agent_config
from drbootstrap.images.userdata import NodeBootConfig, node_env
from drbootstrap.paths import project_root
from tests.support.dnsmasq import DnsmasqServer
from tests.support.prereq import require_binary, require_root

pytestmark = pytest.mark.integration

DOMAIN = "drb-boot.internal"


@pytest.fixture
def netns():
    """A namespace with a veth pair holding the worker's and the master's addresses; deleted after."""
    require_root()
    require_binary("ip", "unshare", "dig", "dnsmasq")
    name = f"drbwb{secrets.token_hex(4)}"
    prefix = f"10.{random.randint(231, 240)}.{random.randint(0, 255)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        script = (
            "ip link set lo up && ip link add v0 type veth peer name v1 && "
            f"ip addr add {prefix}.5/24 dev v0 && ip addr add {prefix}.2/24 dev v0 && "
            "ip link set v0 up && ip link set v1 up"
        )
        subprocess.run(["ip", "netns", "exec", name, "sh", "-c", script], check=True)
        yield name, f"{prefix}.5", f"{prefix}.2"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def prepare_node(tmp_path, master_address: str, puppet_mode: str, kept_name: str) -> tuple:
    """The node's config dir, agent stand-in, /etc files (kept_name in /etc/hostname): (etc, bin_dir, token)."""
    token = secrets.token_urlsafe(16)
    config = NodeBootConfig(
        environment="boot",
        domain=DOMAIN,
        hostname="web01",
        role="web",
        image="worker",
        master_address=master_address,
        controller_name=f"controller.{DOMAIN}",
        broker_host=master_address,
        agent_key="key material",
        autosign_token=token,
        puppet_mode=puppet_mode,
        recipes_dir=str(project_root() / "recipes"),
        config_dir=str(tmp_path / "etc"),
        node_dir=str(tmp_path / "node"),
    )
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "node.env").write_text(node_env(config))
    (etc / "autosign.token").write_text(token + "\n")
    # A stand-in for `drbootstrap agent`: records its arguments, then waits to be stopped.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "drbootstrap").write_text(
        f'#!/bin/sh\necho "$@" >{tmp_path}/args.tmp && mv {tmp_path}/args.tmp {tmp_path}/agent.args\nexec sleep 600\n'
    )
    (bin_dir / "drbootstrap").chmod(0o755)
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.53\n")
    (tmp_path / "hostname").write_text(kept_name + "\n")
    return etc, bin_dir, token


def run_boot(netns_name: str, tmp_path, etc, bin_dir, kept_name: str, env: str = "") -> subprocess.CompletedProcess:
    """boot.sh in fresh UTS and mount namespaces, as on a boot that found kept_name in /etc/hostname."""
    boot = (
        f"mount --bind {tmp_path}/resolv.conf /etc/resolv.conf && "
        f"mount --bind {tmp_path}/hostname /etc/hostname && hostname {kept_name} && "
        f"{env} PATH={bin_dir}:$PATH sh {project_root()}/images/worker/boot.sh {etc} && hostname"
    )
    try:
        return subprocess.run(
            ["ip", "netns", "exec", netns_name, "unshare", "--uts", "--mount", "sh", "-c", boot],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        for _ in range(50):  # the agent stand-in starts in the background: let it record its args
            if (tmp_path / "agent.args").exists():
                break
            time.sleep(0.1)
        pid_file = tmp_path / "node" / "agent.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


@pytest.mark.parametrize("puppet_mode", ["server", "apply"])
def test_worker_takes_its_name_from_reverse_dns_and_configures_agent_and_puppet(netns, tmp_path, puppet_mode):
    name, worker_address, master_address = netns
    etc, bin_dir, token = prepare_node(tmp_path, master_address, puppet_mode, "ip-10-0-0-5")
    dns_dir = tmp_path / "dns"
    dns_dir.mkdir()
    with DnsmasqServer(dns_dir, domain=DOMAIN, host=master_address, port=53, netns=name) as dnsmasq:
        dnsmasq.hosts_file.write_text(f"{worker_address} web01.{DOMAIN} web01\n")
        dnsmasq.reload()
        result = run_boot(name, tmp_path, etc, bin_dir, "ip-10-0-0-5")

    boot_log = result.stdout + result.stderr
    assert result.returncode == 0, boot_log
    assert result.stdout.splitlines()[-1] == "web01", boot_log
    assert (tmp_path / "hostname").read_text() == "web01\n"
    assert f"nameserver {master_address}" in (tmp_path / "resolv.conf").read_text()
    agent = load_agent_config(tmp_path / "node" / "agent.yaml")
    assert agent.identity == f"web01.{DOMAIN}"
    assert agent.brokers == [f"stomp://{master_address}:61613"]
    assert agent.puppet.certname == f"web01.{DOMAIN}" and agent.puppet.server == f"controller.{DOMAIN}"
    assert agent.puppet.mode == puppet_mode
    if puppet_mode == "apply":
        assert agent.puppet.manifest == str(project_root() / "recipes/manifests/site.pp")
        assert agent.puppet.modulepath == str(project_root() / "recipes/modules")
    csr_attributes = tmp_path / "node" / "puppet" / "csr_attributes.yaml"
    assert yaml.safe_load(csr_attributes.read_text()) == {"custom_attributes": {"1.2.840.113549.1.9.7": token}}
    assert csr_attributes.stat().st_mode & 0o777 == 0o600
    assert "certname = web01." + DOMAIN in (tmp_path / "node" / "puppet" / "puppet.conf").read_text()
    assert (tmp_path / "agent.args").read_text().split() == ["agent", "--config", f"{tmp_path}/node/agent.yaml"]


def test_a_named_worker_rebooted_while_the_masters_dns_is_down_keeps_its_name_and_boots(netns, tmp_path):
    name, _worker_address, master_address = netns
    etc, bin_dir, _token = prepare_node(tmp_path, master_address, "server", "web01")
    # Nothing answers on the master's port 53: dig reports "communications error" (on stdout).
    started = time.monotonic()
    result = run_boot(name, tmp_path, etc, bin_dir, "web01", env="DRB_DNS_WAIT_SECONDS=3")
    elapsed = time.monotonic() - started

    boot_log = result.stdout + result.stderr
    assert result.returncode == 0, boot_log
    assert result.stdout.splitlines()[-1] == "web01", boot_log
    assert "did not answer; keeping the name web01" in boot_log
    assert 3 <= elapsed < 30, f"waited {elapsed:.1f}s for the DNS (limit 3 s)"
    assert (tmp_path / "hostname").read_text() == "web01\n"
    agent = load_agent_config(tmp_path / "node" / "agent.yaml")
    assert agent.identity == f"web01.{DOMAIN}" and agent.puppet.certname == f"web01.{DOMAIN}"


def test_a_worker_waits_for_the_masters_dns_that_comes_back_during_its_boot(netns, tmp_path):
    name, worker_address, master_address = netns
    etc, bin_dir, _token = prepare_node(tmp_path, master_address, "server", "ip-10-0-0-5")
    dns_dir = tmp_path / "dns"
    dns_dir.mkdir()
    server = DnsmasqServer(dns_dir, domain=DOMAIN, host=master_address, port=53, netns=name)
    server.hosts_file.parent.mkdir(parents=True, exist_ok=True)
    server.hosts_file.write_text(f"{worker_address} web01.{DOMAIN} web01\n")
    timer = threading.Timer(3.0, server.start)  # the master's DNS comes back 3 s into the boot
    timer.start()
    try:
        result = run_boot(name, tmp_path, etc, bin_dir, "ip-10-0-0-5", env="DRB_DNS_WAIT_SECONDS=60")
    finally:
        timer.join()
        server.stop()

    boot_log = result.stdout + result.stderr
    assert result.returncode == 0, boot_log
    assert result.stdout.splitlines()[-1] == "web01", boot_log
    assert "named web01." + DOMAIN + " by reverse DNS" in boot_log
