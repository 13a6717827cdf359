"""The master's broker with TLS, started as its boot script starts it: stomp+ssl on the node's
address with a certificate made on the first boot and kept on later ones, plain STOMP on loopback
only; an agent and a client that pin that certificate talk through it, a client pinning another is
refused."""

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
from drbootstrap.broker import free_port, make_self_signed_keystore, stomp_connect_succeeds
from drbootstrap.errors import MessagingError
from drbootstrap.messaging.client import ClientConfig, RpcClient
from tests.integration.messaging.conftest import new_key, node_config
from tests.support.prereq import require, require_binary, require_root

pytestmark = pytest.mark.integration
NODE_ADDRESS = "127.0.0.2"  # a loopback address that is not 127.0.0.1, where plain STOMP stays


def start_master_broker(base: Path, port: int) -> int:
    """`master_services broker --tls` as images/master/boot.sh runs it; the broker's pid."""
    output = subprocess.run(
        [sys.executable, "-m", "drbootstrap.images.master_services", "broker", "--base-dir", str(base),
         "--host", NODE_ADDRESS, "--port", str(port), "--tls", "--tls-name", "controller.demo.internal"],
        check=True, capture_output=True, text=True, timeout=120,
    )
    return int(output.stdout.strip())


def stop(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def master_broker() -> Iterator[tuple[Path, int, int]]:
    require_root()
    require_binary("java", "keytool")
    require(Path("/usr/share/activemq/bin/activemq.jar").exists(), "Debian's activemq package")
    base = Path(tempfile.mkdtemp(prefix="drb-amq-tls-"))
    port = free_port(NODE_ADDRESS)
    pid = start_master_broker(base, port)
    try:
        yield base, port, pid
    finally:
        stop(pid)
        shutil.rmtree(base, ignore_errors=True)


def test_the_network_gets_stomp_ssl_only_and_loopback_plain_stomp(master_broker):
    base, port, _ = master_broker
    cert = base / "tls" / "broker-cert.pem"
    assert stomp_connect_succeeds(NODE_ADDRESS, port, tls_ca=cert)
    assert not stomp_connect_succeeds(NODE_ADDRESS, port, timeout=3.0)  # no plain STOMP on the address
    assert stomp_connect_succeeds("127.0.0.1", port)
    assert (base / "tls" / "keystore.password").stat().st_mode & 0o777 == 0o600
    assert (base / "tls" / "broker.p12").stat().st_mode & 0o777 == 0o600
    assert (base / "conf" / "activemq.xml").stat().st_mode & 0o777 == 0o600


def test_an_agent_and_a_client_pinning_the_certificate_talk_and_another_pin_is_refused(master_broker, tmp_path):
    base, port, _ = master_broker
    cert = base / "tls" / "broker-cert.pem"
    url = f"stomp+ssl://{NODE_ADDRESS}:{port}"
    key = new_key(tmp_path)
    identity = f"tls-{secrets.token_hex(3)}"
    servers = run_agents([node_config(tmp_path, url, key, identity, tls_ca=str(cert))], wait=30)
    try:
        config = ClientConfig([url], key_file=key, tls_ca=cert, discovery_timeout=5.0, connect_timeout=10.0)
        with RpcClient(config) as client:
            assert client.discover(expect=[identity]) == [identity]
        other = make_self_signed_keystore(tmp_path / "other", NODE_ADDRESS).cert_pem
        impostor = ClientConfig([url], key_file=key, tls_ca=other, connect_timeout=3.0)
        with pytest.raises(MessagingError, match="cannot connect"), RpcClient(impostor):
            pass
    finally:
        for server in servers:
            server.stop()


def test_a_restarted_master_broker_keeps_the_certificate_clients_pinned(master_broker):
    base, port, pid = master_broker
    cert = base / "tls" / "broker-cert.pem"
    pinned = cert.read_bytes()
    stop(pid)
    new_pid = start_master_broker(base, port)
    try:
        assert cert.read_bytes() == pinned
        assert stomp_connect_succeeds(NODE_ADDRESS, port, tls_ca=cert)
    finally:
        stop(new_pid)
