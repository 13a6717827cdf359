"""The master's RabbitMQ with TLS, started as its boot script starts it (`master_services broker
--kind rabbitmq --tls`): stomp+ssl on the node's address with a certificate issued at start by the
master's issuing CA, which agents verify against the environment's CA and the controller by chain
and name; plain STOMP on loopback only; an impostor under another CA is refused. Without an issuer,
a certificate under a CA of its own, made on the first boot and kept across restarts."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drbootstrap.agent.daemon import run_agents
from drbootstrap.broker import free_port, stomp_connect_succeeds
from drbootstrap.errors import MessagingError
from drbootstrap.messaging.broker_ca import CertifiedKey, issue_master_ca, make_environment_ca
from drbootstrap.messaging.client import ClientConfig, RpcClient
from drbootstrap.paths import write_private_file
from tests.integration.messaging.conftest import new_key, node_config
from tests.integration.messaging.test_master_broker_tls import NODE_ADDRESS
from tests.support.prereq import require, require_binary, require_root

pytestmark = pytest.mark.integration


def stop(pid: int) -> None:
    """Stop the node whose Erlang VM is PID: its whole process group (launcher shell, epmd)."""
    try:
        group = os.getpgid(pid)
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(group, signal.SIGKILL)


def start_master_rabbitmq(base: Path, port: int, issuer: CertifiedKey | None = None) -> int:
    issuer_args: list[str] = []
    if issuer is not None:
        (base / "issuer.pem").write_text(issuer.cert_pem)
        write_private_file(base / "issuer.key", issuer.key_pem)
        issuer_args = ["--issuer-cert", str(base / "issuer.pem"), "--issuer-key", str(base / "issuer.key")]
    output = subprocess.run(
        [sys.executable, "-m", "drbootstrap.images.master_services", "broker", "--kind", "rabbitmq",
         "--base-dir", str(base / "node"), "--host", NODE_ADDRESS, "--port", str(port), "--tls",
         "--tls-name", "controller.demo.internal", *issuer_args],
        check=True, capture_output=True, text=True, timeout=180,
    )
    return int(output.stdout.strip())


@pytest.fixture(scope="module")
def brokers() -> Iterator[dict[str, tuple[Path, int, int]]]:
    """demo: issued under the environment's CA; other: an impostor under another environment's."""
    require_root()
    require_binary("epmd")
    require(Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists(), "RabbitMQ (Debian `rabbitmq-server`)")
    started: dict[str, tuple[Path, int, int]] = {}
    try:
        for environment in ("demo", "other"):
            base = Path(tempfile.mkdtemp(prefix="drb-rabbit-tls-"))
            ca = make_environment_ca(environment)
            issuer = issue_master_ca(ca, environment)
            (base / "ca.pem").write_text(ca.cert_pem)
            (base / "chain.pem").write_text(ca.cert_pem + issuer.cert_pem)
            port = free_port(NODE_ADDRESS)
            started[environment] = (base, port, start_master_rabbitmq(base, port, issuer))
        yield started
    finally:
        for base, _, pid in started.values():
            stop(pid)
            shutil.rmtree(base, ignore_errors=True)


def test_the_network_gets_stomp_ssl_only_and_the_key_stays_private(brokers):
    base, port, _ = brokers["demo"]
    assert stomp_connect_succeeds(NODE_ADDRESS, port, tls_ca=base / "ca.pem")
    assert not stomp_connect_succeeds(NODE_ADDRESS, port, timeout=3.0)
    assert stomp_connect_succeeds("127.0.0.1", port)
    tls = base / "node" / "tls"
    assert (tls / "broker.key").stat().st_mode & 0o077 == 0
    assert (base / "node" / "rabbitmq.conf").stat().st_mode & 0o077 == 0
    assert "PRIVATE" not in (tls / "broker-leaf.pem").read_text()


def test_agents_and_the_controller_verify_rabbitmq_by_the_environments_ca_and_refuse_an_impostor(brokers, tmp_path):
    (base, port, _), (_, impostor_port, _) = brokers["demo"], brokers["other"]
    ca, chain = base / "ca.pem", base / "chain.pem"
    key = new_key(tmp_path)
    identity = f"rabbit-tls-{secrets.token_hex(3)}"
    url, impostor_url = f"stomp+ssl://{NODE_ADDRESS}:{port}", f"stomp+ssl://{NODE_ADDRESS}:{impostor_port}"
    servers = run_agents([node_config(tmp_path, url, key, identity, tls_ca=str(ca), broker_kind="rabbitmq")],
                         wait=30)
    try:
        controller = dict(key_file=key, tls_ca=chain, tls_server_name="controller.demo.internal",
                          broker_kind="rabbitmq")
        with RpcClient(ClientConfig([url], discovery_timeout=5.0, connect_timeout=10.0, **controller)) as client:
            assert client.ping(expect=[identity]).responded == [identity]
        with pytest.raises(MessagingError, match="cannot connect"), \
                RpcClient(ClientConfig([impostor_url], connect_timeout=3.0, **controller)):
            pass
    finally:
        for server in servers:
            server.stop()


def test_without_an_issuer_the_certificate_is_made_once_and_kept(tmp_path):
    require_root()
    require(Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists(), "RabbitMQ (Debian `rabbitmq-server`)")
    port = free_port(NODE_ADDRESS)
    pid = start_master_rabbitmq(tmp_path, port)
    cert = tmp_path / "node" / "tls" / "broker-cert.pem"
    try:
        pinned = cert.read_bytes()
        assert stomp_connect_succeeds(NODE_ADDRESS, port, tls_ca=cert)
    finally:
        stop(pid)
    pid = start_master_rabbitmq(tmp_path, port)
    try:
        assert cert.read_bytes() == pinned
        assert stomp_connect_succeeds(NODE_ADDRESS, port, tls_ca=cert)
    finally:
        stop(pid)
