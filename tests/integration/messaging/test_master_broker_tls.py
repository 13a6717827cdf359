"""The master's broker with TLS, started as its boot script starts it: stomp+ssl on the node's
address, plain STOMP on loopback only. With the master's issuing CA (what `up` gives it), a
certificate issued at every start that agents and the client verify against the environment's CA
(chain and address, as stomp.py checks them); a broker presenting another environment's certificate
is refused by both. Without one, a self-signed certificate made on the first boot and kept."""

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
from dataclasses import dataclass
from pathlib import Path

import pytest

from drbootstrap.agent.daemon import run_agents
from drbootstrap.broker import free_port, make_self_signed_keystore, stomp_connect_succeeds
from drbootstrap.errors import MessagingError
from drbootstrap.messaging.broker_ca import CertifiedKey, issue_master_ca, make_environment_ca
from drbootstrap.messaging.client import ClientConfig, RpcClient
from drbootstrap.paths import write_private_file
from tests.integration.messaging.conftest import new_key, node_config
from tests.support.prereq import require, require_binary, require_root

pytestmark = pytest.mark.integration
NODE_ADDRESS = "127.0.0.2"  # a loopback address that is not 127.0.0.1, where plain STOMP stays


def start_master_broker(base: Path, port: int, issuer: CertifiedKey | None = None) -> int:
    """`master_services broker --tls` as images/master/boot.sh runs it; the broker's pid."""
    issuer_args: list[str] = []
    if issuer is not None:
        (base / "issuer.pem").write_text(issuer.cert_pem)
        write_private_file(base / "issuer.key", issuer.key_pem)
        issuer_args = ["--issuer-cert", str(base / "issuer.pem"), "--issuer-key", str(base / "issuer.key")]
    output = subprocess.run(
        [sys.executable, "-m", "drbootstrap.images.master_services", "broker", "--base-dir", str(base),
         "--host", NODE_ADDRESS, "--port", str(port), "--tls", "--tls-name", "controller.demo.internal",
         *issuer_args],
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


@dataclass
class IssuedBroker:
    ca_file: Path  # the environment's CA: all an agent trusts
    chain_file: Path  # and the master's issuing CA: what the controller checks the chain and name by
    port: int
    base: Path


@pytest.fixture(scope="module")
def issued_brokers() -> Iterator[tuple[IssuedBroker, IssuedBroker]]:
    """Ours, issued under the environment's CA, and an impostor at the same address issued under
    another environment's CA (its certificate names the same address and name)."""
    require_root()
    require_binary("java")
    require(Path("/usr/share/activemq/bin/activemq.jar").exists(), "Debian's activemq package")
    started: list[tuple[int, Path]] = []
    brokers = []
    try:
        for environment in ("demo", "other"):
            base = Path(tempfile.mkdtemp(prefix="drb-amq-ca-"))
            ca = make_environment_ca(environment)
            issuer = issue_master_ca(ca, environment)
            (base / "ca.pem").write_text(ca.cert_pem)
            (base / "chain.pem").write_text(ca.cert_pem + issuer.cert_pem)
            port = free_port(NODE_ADDRESS)
            started.append((start_master_broker(base, port, issuer), base))
            brokers.append(IssuedBroker(base / "ca.pem", base / "chain.pem", port, base))
        yield brokers[0], brokers[1]
    finally:
        for pid, base in started:
            stop(pid)
            shutil.rmtree(base, ignore_errors=True)


def test_an_issued_broker_keeps_no_keytool_secret_in_the_clear(issued_brokers):
    ours, _ = issued_brokers
    tls = ours.base / "tls"
    assert (tls / "broker.p12").stat().st_mode & 0o777 == 0o600
    assert (tls / "keystore.password").stat().st_mode & 0o777 == 0o600
    assert (ours.base / "conf" / "activemq.xml").stat().st_mode & 0o777 == 0o600
    assert "PRIVATE" not in (tls / "broker-cert.pem").read_text()


def test_agents_and_the_client_verify_the_broker_by_the_environments_ca_and_refuse_an_impostor(
        issued_brokers, tmp_path):
    ours, impostor = issued_brokers
    key = new_key(tmp_path)
    identity = f"ca-{secrets.token_hex(3)}"
    url, impostor_url = (f"stomp+ssl://{NODE_ADDRESS}:{b.port}" for b in (ours, impostor))
    assert stomp_connect_succeeds(NODE_ADDRESS, ours.port, tls_ca=ours.ca_file)
    assert not stomp_connect_succeeds(NODE_ADDRESS, impostor.port, timeout=3.0, tls_ca=ours.ca_file)
    servers = run_agents([node_config(tmp_path, url, key, identity, tls_ca=str(ours.ca_file)),
                          node_config(tmp_path, impostor_url, key, identity + "-fooled", tls_ca=str(ours.ca_file))],
                         wait=8)
    try:
        assert servers[0].transport.connected.is_set()
        assert not servers[1].transport.connected.is_set()  # the agent refused the impostor's certificate
        with RpcClient(ClientConfig([url], key_file=key, tls_ca=ours.ca_file, discovery_timeout=5.0,
                                    connect_timeout=10.0)) as client:
            assert client.discover(expect=[identity]) == [identity]
        fooled = ClientConfig([impostor_url], key_file=key, tls_ca=ours.ca_file, connect_timeout=3.0)
        with pytest.raises(MessagingError, match="cannot connect"), RpcClient(fooled):
            pass
        # The controller: the chain and the master's name, not the address it dials.
        controller = dict(key_file=key, tls_ca=ours.chain_file, tls_server_name="controller.demo.internal")
        with RpcClient(ClientConfig([url], discovery_timeout=5.0, connect_timeout=10.0, **controller)) as client:
            assert client.discover(expect=[identity]) == [identity]
        with pytest.raises(MessagingError, match="cannot connect"), \
                RpcClient(ClientConfig([impostor_url], connect_timeout=3.0, **controller)):
            pass
        misnamed = dict(controller, tls_server_name="web01.demo.internal")
        with pytest.raises(MessagingError, match="cannot connect"), \
                RpcClient(ClientConfig([url], connect_timeout=3.0, **misnamed)):
            pass
    finally:
        for server in servers:
            server.stop()

