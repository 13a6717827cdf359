"""images/worker/boot.sh in a namespace of its own: it learns its name from the master's dnsmasq
by reverse DNS, points its resolver there, and writes the agent and Puppet settings."""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
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


@pytest.mark.parametrize("puppet_mode", ["server", "apply"])
def test_worker_takes_its_name_from_reverse_dns_and_configures_agent_and_puppet(netns, tmp_path, puppet_mode):
    name, worker_address, master_address = netns
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
    (tmp_path / "hostname").write_text("ip-10-0-0-5\n")

    dns_dir = tmp_path / "dns"
    dns_dir.mkdir()
    with DnsmasqServer(dns_dir, domain=DOMAIN, host=master_address, port=53, netns=name) as dnsmasq:
        dnsmasq.hosts_file.write_text(f"{worker_address} web01.{DOMAIN} web01\n")
        dnsmasq.reload()
        boot = (
            f"mount --bind {tmp_path}/resolv.conf /etc/resolv.conf && "
            f"mount --bind {tmp_path}/hostname /etc/hostname && hostname ip-10-0-0-5 && "
            f"PATH={bin_dir}:$PATH sh {project_root()}/images/worker/boot.sh {etc} && hostname"
        )
        try:
            result = subprocess.run(
                ["ip", "netns", "exec", name, "unshare", "--uts", "--mount", "sh", "-c", boot],
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
