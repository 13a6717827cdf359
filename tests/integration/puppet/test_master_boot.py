"""images/master/boot.sh (apply mode) in a namespace of its own: dnsmasq answers the controller's
name both ways, ActiveMQ accepts STOMP, and the autosign hook it writes signs once per token."""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AttributeOID, NameOID

from drbootstrap.agent.config import load_agent_config
from drbootstrap.images.autosign import issue_token
from drbootstrap.images.userdata import NodeBootConfig, node_env
from drbootstrap.paths import project_root
from tests.support.prereq import require, require_binary, require_root

pytestmark = pytest.mark.integration

DOMAIN = "drb-master.internal"


@pytest.fixture
def netns():
    """A namespace with one veth end holding the master's address; deleted after."""
    require_root()
    require_binary("ip", "unshare", "dig", "dnsmasq", "java")
    require(Path("/usr/share/activemq/bin/activemq.jar").exists(), "ActiveMQ (Debian activemq package)")
    name = f"drbmb{secrets.token_hex(4)}"
    address = f"10.{random.randint(241, 250)}.{random.randint(0, 255)}.2"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        script = (
            "ip link set lo up && ip link add v0 type veth peer name v1 && "
            f"ip addr add {address}/24 dev v0 && ip link set v0 up && ip link set v1 up"
        )
        subprocess.run(["ip", "netns", "exec", name, "sh", "-c", script], check=True)
        yield name, address
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def csr_for(certname: str, token: str) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, certname)])
    ).add_attribute(AttributeOID.CHALLENGE_PASSWORD, token.encode())
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM
    )


def stop_started_services(node: Path) -> None:
    """Stop what boot.sh started, by the pids it recorded (ActiveMQ leads its own process group):
    its supervision loops (and the sleep each waits in) first, so that nothing is restarted."""
    supervisors = [int(pid) for pid in (node / "supervisor.pids").read_text().split()] \
        if (node / "supervisor.pids").exists() else []
    for pid in supervisors:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            os.kill(pid, signal.SIGTERM)
            for child in children:
                os.kill(int(child), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    for pid_file, group in (
        (node / "agent.pid", False),
        (node / "dns/dnsmasq.pid", False),
        (node / "activemq.pid", True),
    ):
        try:
            pid = int(pid_file.read_text().strip())
            if group:
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass


def dig(netns: str, *args: str) -> str:
    command = ["ip", "netns", "exec", netns, "dig", "+short", "+time=2", "+tries=1", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip()


def test_master_boot_serves_names_broker_and_one_time_autosign(netns, tmp_path):
    name, address = netns
    config = NodeBootConfig(
        environment="mboot", domain=DOMAIN, hostname="controller", role="master", image="master",
        broker_host=address, broker_port=61613, puppet_mode="apply", agent_key="key material",
        config_dir=str(tmp_path / "etc"), node_dir=str(tmp_path / "node"),
    )
    etc, node = tmp_path / "etc", tmp_path / "node"
    etc.mkdir()
    (etc / "node.env").write_text(node_env(config))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "drbootstrap").write_text("#!/bin/sh\nexec sleep 600\n")  # stands in for the agent
    (bin_dir / "drbootstrap").chmod(0o755)
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.53\n")
    (tmp_path / "hostname").write_text("ip-10-0-0-2\n")
    boot = (
        f"mount --bind {tmp_path}/resolv.conf /etc/resolv.conf && mount --bind {tmp_path}/hostname /etc/hostname && "
        f"PATH={bin_dir}:$PATH sh {project_root()}/images/master/boot.sh {etc}"
    )
    try:
        result = subprocess.run(
            ["ip", "netns", "exec", name, "unshare", "--uts", "--mount", "sh", "-c", boot],
            capture_output=True, text=True, timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr

        assert dig(name, f"@{address}", f"controller.{DOMAIN}") == address
        assert dig(name, f"@{address}", "-x", address) == f"controller.{DOMAIN}."
        stomp = (
            "exec 3<>/dev/tcp/{a}/61613 && "
            "printf 'CONNECT\\naccept-version:1.2\\nhost:/\\n\\n\\0' >&3 && head -c 9 <&3"
        )
        connected = subprocess.run(
            ["ip", "netns", "exec", name, "bash", "-c", stomp.format(a=address)],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert connected.stdout == "CONNECTED"
        assert (tmp_path / "resolv.conf").read_text().startswith(f"nameserver {address}\n")
        agent = load_agent_config(node / "agent.yaml")
        assert agent.identity == f"controller.{DOMAIN}" and agent.dns.hosts_file == str(node / "dns/hosts")

        token = issue_token(etc / "autosign-tokens.json", f"web01.{DOMAIN}")
        csr = csr_for(f"web01.{DOMAIN}", token)
        hook = [str(node / "puppet/autosign"), f"web01.{DOMAIN}"]
        first = subprocess.run(hook, input=csr, capture_output=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
        second = subprocess.run(hook, input=csr, capture_output=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
        assert (first.returncode, second.returncode) == (0, 1), first.stderr + second.stderr
    finally:
        stop_started_services(node)
        time.sleep(0.5)  # let the JVM leave before the namespace goes
