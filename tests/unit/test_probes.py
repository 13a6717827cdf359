"""drbootstrap.images.probes against small loopback stand-ins: DNS (dnspython), STOMP, a TLS CA."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dns.message
import dns.rdatatype
import dns.rrset
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drbootstrap.images.probes import (
    BROKER,
    DNS,
    PUPPET_CA,
    MasterNotReady,
    node_dir_log_reader,
    probe_master,
)
from tests.support.server_process import free_port

FQDN = "controller.probe.internal"
ADDRESS = "127.0.0.1"


class FakeDns(threading.Thread):
    """Answers A FQDN -> 127.0.0.1 and its PTR (or nothing, when `known` is False)."""

    def __init__(self, known: bool = True) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ADDRESS, 0))
        self.port = self.sock.getsockname()[1]
        self.known = known

    def run(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                return
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            question = query.question[0]
            if self.known and question.rdtype == dns.rdatatype.A:
                reply.answer.append(dns.rrset.from_text(question.name, 30, "IN", "A", ADDRESS))
            elif self.known and question.rdtype == dns.rdatatype.PTR:
                reply.answer.append(dns.rrset.from_text(question.name, 30, "IN", "PTR", FQDN + "."))
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


class FakeStomp(threading.Thread):
    def __init__(self, answer: bytes = b"CONNECTED\nversion:1.2\n\n\0") -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server((ADDRESS, 0))
        self.port = self.server.getsockname()[1]
        self.answer = answer

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(self.answer)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def fake_ca(tmp_path):
    """HTTPS on loopback serving a PEM certificate at the Puppet CA's path."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Puppet CA: probe")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/puppet-ca/v1/certificate/ca"
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(pem if ok else b"not found")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer((ADDRESS, 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_dns():
    server = FakeDns()
    server.start()
    yield server
    server.close()


@pytest.fixture
def fake_stomp():
    server = FakeStomp()
    server.start()
    yield server
    server.close()


def test_every_service_answering_makes_the_master_ready_with_a_time_per_service(fake_dns, fake_stomp, fake_ca):
    report = probe_master(ADDRESS, "probe.internal", "controller", fake_stomp.port, fake_ca,
                          timeout=10, dns_port=fake_dns.port)
    assert report.ready, report.summary()
    assert [s.service for s in report.services] == [DNS, BROKER, PUPPET_CA]
    assert all(report.seconds_to_ready(s) is not None for s in (DNS, BROKER, PUPPET_CA))
    report.raise_if_not_ready()  # no error


def test_a_silent_puppet_ca_is_named_with_its_reason_and_its_log_tail(fake_dns, fake_stomp, tmp_path):
    node_dir = tmp_path / "node"
    (node_dir / "puppet" / "log").mkdir(parents=True)
    (node_dir / "puppet" / "log" / "puppetserver.log").write_text("line 1\nERROR java.lang.OutOfMemoryError\n")
    report = probe_master(ADDRESS, "probe.internal", "controller", fake_stomp.port, free_port(), timeout=0.5,
                          dns_port=fake_dns.port, log_reader=node_dir_log_reader(node_dir))
    assert not report.ready
    assert [s.service for s in report.failures] == [PUPPET_CA]
    failed = report.status(PUPPET_CA)
    assert "Connection refused" in failed.reason and "\n" not in failed.reason
    assert failed.log_tail.endswith("ERROR java.lang.OutOfMemoryError")
    with pytest.raises(MasterNotReady) as raised:
        report.raise_if_not_ready()
    assert "puppet-ca" in raised.value.message and "\n" not in raised.value.message
    assert "OutOfMemoryError" in raised.value.log_tail


def test_dns_without_the_controllers_name_and_a_broker_refusing_stomp_are_each_explained(fake_stomp):
    dns_server = FakeDns(known=False)
    dns_server.start()
    refusing = FakeStomp(answer=b"ERROR\nmessage:not allowed\n\n\0")
    refusing.start()
    try:
        report = probe_master(ADDRESS, "probe.internal", FQDN, refusing.port, timeout=0.3, puppet=False,
                              dns_port=dns_server.port)
    finally:
        dns_server.close()
        refusing.close()
    assert [s.service for s in report.failures] == [DNS, BROKER]
    assert f"answers {FQDN} with no A record" in report.status(DNS).reason
    assert "answered CONNECT with 'ERROR'" in report.status(BROKER).reason
    assert report.status(DNS).log_tail == ""  # no log reader given


def test_a_missing_log_file_is_said_not_raised(tmp_path):
    report = probe_master(ADDRESS, "probe.internal", "controller", free_port(), timeout=0.1, puppet=False,
                          dns_port=free_port(), log_reader=node_dir_log_reader(tmp_path))
    assert report.status(BROKER).log_tail.startswith("(no log at ")


def test_probe_for_spec_takes_domain_controller_and_broker_port_from_the_spec(monkeypatch):
    from drbootstrap.images import probes
    from drbootstrap.spec import load_spec
    from tests.support.prereq import REPO_ROOT

    spec = load_spec(REPO_ROOT / "examples" / "local.yaml", resolve_secrets=False)
    seen = {}
    monkeypatch.setattr(probes, "probe_master", lambda *args, **kwargs: seen.update(args=args, kwargs=kwargs))
    probes.probe_master_for_spec("10.213.0.11", spec, 30)
    assert seen["args"] == ("10.213.0.11", str(spec.domain), spec.fqdn(spec.master.hostname), spec.master.broker.port)
    assert seen["kwargs"]["puppet"] == (spec.master.puppet.mode == "server")


def test_arming_tokens_refuses_anything_but_a_digest_before_connecting(tmp_path):
    from drbootstrap.images.autosign import AutosignError
    from drbootstrap.images.master_access import arm_autosign_tokens
    from drbootstrap.ssh import PinnedHostKey, SshTarget

    target = SshTarget("192.0.2.1", (PinnedHostKey("ssh-ed25519", "AAAA"),), tmp_path / "key")
    with pytest.raises(AutosignError, match="not a SHA-256 hex digest") as refused:
        arm_autosign_tokens(target, "/etc/drbootstrap", {"db01.demo.internal": "the-raw-token"})
    assert "the-raw-token" not in str(refused.value)
