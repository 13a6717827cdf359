"""The broker link's TLS: on by default except on the local cloud, the environment's CA made once
before any launch (its key never in any user-data), the master issuing its broker's certificate for
the address it has, and that certificate checked as stomp.py checks it (chain and address dialed)."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from drbootstrap.executor.secrets import load_or_create_broker_ca
from drbootstrap.images.from_spec import broker_uses_tls, master_boot_config, worker_boot_config
from drbootstrap.images.userdata import UserDataError, cloud_config, node_env, render_user_data
from drbootstrap.messaging.broker_ca import (
    CertifiedKey,
    issue_broker_certificate,
    issue_master_ca,
    make_environment_ca,
)
from drbootstrap.paths import EnvironmentPaths, project_root
from drbootstrap.spec import load_spec

MASTER_ADDRESS = "10.213.0.2"


@pytest.fixture(scope="module")
def spec():
    return load_spec(project_root() / "examples" / "local.yaml")


def on_provider(spec, name):
    return spec.model_copy(update={"provider": spec.provider.model_copy(update={"name": name})})


def with_broker_tls(spec, tls):
    broker = spec.master.broker.model_copy(update={"tls": tls})
    return spec.model_copy(update={"master": spec.master.model_copy(update={"broker": broker})})


def with_security_tls(spec, enabled):
    tls = spec.security.tls.model_copy(update={"enabled": enabled})
    return spec.model_copy(update={"security": spec.security.model_copy(update={"tls": tls})})


def test_tls_is_on_by_default_on_real_clouds_and_off_on_the_local_one_unless_the_spec_says(spec):
    assert not broker_uses_tls(spec)  # examples/local.yaml: the local cloud
    for name in ("ec2", "eucalyptus", "openstack", "gce"):
        assert broker_uses_tls(on_provider(spec, name)), name
    assert not broker_uses_tls(with_broker_tls(on_provider(spec, "ec2"), False))  # the explicit choice
    assert not broker_uses_tls(with_security_tls(on_provider(spec, "ec2"), False))
    assert broker_uses_tls(with_broker_tls(spec, True)) and broker_uses_tls(with_security_tls(spec, True))
    assert not broker_uses_tls(with_security_tls(with_broker_tls(spec, False), True))  # master.broker wins


def test_the_environment_ca_is_made_once_with_its_keys_0600(tmp_path):
    paths = EnvironmentPaths(tmp_path, "demo")
    issuer = load_or_create_broker_ca(paths, "demo")
    assert load_or_create_broker_ca(paths, "demo") == issuer
    for key in (paths.broker_ca_key, paths.broker_issuer_key):
        assert key.stat().st_mode & 0o777 == 0o600 and "PRIVATE KEY" in key.read_text()
    assert "PRIVATE" not in paths.broker_ca.read_text() + paths.broker_issuer.read_text()
    assert repr(issuer).count("PRIVATE") == 0  # the key is never in a repr


def serve_tls_once(chain: CertifiedKey, tmp_path: Path, host: str = "127.0.0.1") -> int:
    (tmp_path / "chain.pem").write_text(chain.cert_pem)
    (tmp_path / "key.pem").write_text(chain.key_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "chain.pem", tmp_path / "key.pem")
    listener = socket.create_server((host, 0))

    def accept() -> None:
        with listener:
            listener.settimeout(10)
            connection, _ = listener.accept()
            try:
                with server.wrap_socket(connection, server_side=True) as tls:
                    tls.settimeout(5)
                    if tls.recv(1024).startswith(b"CONNECT"):
                        tls.sendall(b"CONNECTED\nversion:1.2\n\n\0")
            except (ssl.SSLError, OSError):
                connection.close()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def handshake(ca_file: Path, port: int, server_hostname: str) -> None:
    """What stomp.py does with set_ssl(ca_certs=CA): PROTOCOL_TLS_CLIENT, the address dialed as the name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(ca_file))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        context.wrap_socket(raw, server_hostname=server_hostname).close()


def test_a_broker_certificate_from_the_masters_issuer_verifies_for_its_address_only(tmp_path):
    ca = make_environment_ca("demo")
    (tmp_path / "ca.pem").write_text(ca.cert_pem)
    broker = issue_broker_certificate(issue_master_ca(ca, "demo"), ("127.0.0.1", "controller.demo.internal"))
    handshake(tmp_path / "ca.pem", serve_tls_once(broker, tmp_path), "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(tmp_path / "ca.pem", serve_tls_once(broker, tmp_path), "127.0.0.2")


def test_a_broker_certificate_from_another_environments_ca_is_refused(tmp_path):
    ours, theirs = make_environment_ca("demo"), make_environment_ca("demo")
    (tmp_path / "ca.pem").write_text(ours.cert_pem)
    impostor = issue_broker_certificate(issue_master_ca(theirs, "demo"), ("127.0.0.1",))
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(tmp_path / "ca.pem", serve_tls_once(impostor, tmp_path), "127.0.0.1")


def test_the_master_gets_its_issuer_and_the_workers_only_the_ca_never_the_ca_key(spec, tmp_path):
    tls_spec = on_provider(spec, "ec2")
    paths = EnvironmentPaths(tmp_path, spec.environment)
    issuer = load_or_create_broker_ca(paths, spec.environment)
    ca_pem, ca_key = paths.broker_ca.read_text(), paths.broker_ca_key.read_text()
    master = master_boot_config(tls_spec, broker_ca=ca_pem, broker_issuer=issuer, config_dir="/etc/drb")
    worker = worker_boot_config(tls_spec, "web01", master_address=MASTER_ADDRESS, autosign_token="t" * 40,
                                broker_ca=ca_pem, config_dir="/etc/drb")
    assert master.broker_protocol == worker.broker_protocol == "stomp+ssl"
    master_files = {f["path"]: f for f in cloud_config(master)["write_files"]}
    assert master_files["/etc/drb/broker-issuer.key"]["permissions"] == "0600"
    assert master_files["/etc/drb/broker-issuer.key"]["content"] == issuer.key_pem
    assert master_files["/etc/drb/broker-ca.pem"]["content"] == ca_pem
    assert "DRB_BROKER_ISSUER_KEY_FILE=/etc/drb/broker-issuer.key" in node_env(master)
    worker_files = {f["path"]: f for f in cloud_config(worker)["write_files"]}
    assert worker_files["/etc/drb/broker-ca.pem"]["content"] == ca_pem
    assert not any("broker-issuer" in path for path in worker_files)
    ca_key_body = "".join(line for line in ca_key.splitlines() if not line.startswith("-----"))
    for config in (master, worker):
        text = render_user_data(config, allow_gzip=False).decode()
        assert ca_key_body not in text.replace("\n", "").replace(" ", "")
    assert issuer.key_pem not in render_user_data(worker, allow_gzip=False).decode()


def test_the_user_data_refuses_tls_material_in_the_wrong_place(spec):
    tls_spec = on_provider(spec, "ec2")
    with pytest.raises(UserDataError, match="needs the environment's broker CA"):
        worker_boot_config(tls_spec, "web01", master_address=MASTER_ADDRESS, autosign_token="t" * 40)
    issuer = issue_master_ca(make_environment_ca("demo"), "demo")
    with pytest.raises(UserDataError, match="goes to a master"):
        master_boot_config(tls_spec, broker_issuer=issuer)  # an issuer without the CA it chains to
    assert worker_boot_config(spec, "web01", master_address=MASTER_ADDRESS, autosign_token="t" * 40,
                              broker_ca="-----BEGIN CERTIFICATE-----\n").broker_ca is None  # plain: nothing


def test_the_boot_scripts_hand_the_issuer_to_the_broker_and_the_ca_to_the_agents():
    master = (project_root() / "images" / "master" / "boot.sh").read_text()
    worker = (project_root() / "images" / "worker" / "boot.sh").read_text()
    assert "--issuer-cert $DRB_BROKER_ISSUER_CERT_FILE --issuer-key $DRB_BROKER_ISSUER_KEY_FILE" in master
    assert 'echo "tls_ca: $DRB_BROKER_CA_FILE"' in master and 'echo "tls_ca: $DRB_BROKER_CA_FILE"' in worker


def test_the_services_step_requires_the_broker_to_present_a_certificate_of_the_environments_ca(
        spec, tmp_path, monkeypatch):
    import drbootstrap.broker
    from drbootstrap.executor.outcomes import StepFailed
    from drbootstrap.executor.steps import verify_broker_certificate

    paths = EnvironmentPaths(tmp_path, spec.environment)
    ctx = SimpleNamespace(paths=paths, spec=with_broker_tls(spec, True))
    node = SimpleNamespace(reachable_address=MASTER_ADDRESS)
    probes = []

    def probe(host, port, *, timeout, tls_ca, tls_server_name):
        probes.append((host, port, tls_ca, tls_server_name))
        return verdict

    monkeypatch.setattr(drbootstrap.broker, "stomp_connect_probe", probe)
    verdict = (False, "certificate verify failed")
    with pytest.raises(StepFailed, match="does not present a certificate of this environment's CA"):
        verify_broker_certificate(ctx, node)
    verdict = (True, "")
    assert "verified against the environment's broker CA" in verify_broker_certificate(ctx, node)
    assert probes[-1] == (MASTER_ADDRESS, 61613, paths.broker_ca_chain, "controller.demo.internal")


def test_the_controller_checks_the_chain_and_the_masters_name_wherever_it_dials(tmp_path):
    """A cloud's public address is not on the master: its certificate names its private address and
    name; the controller dials the public one and checks the name."""
    from drbootstrap.broker import stomp_connect_probe

    paths = EnvironmentPaths(tmp_path, "demo")
    issuer = load_or_create_broker_ca(paths, "demo")
    assert paths.broker_ca_chain.read_text() == paths.broker_ca.read_text() + issuer.cert_pem
    broker = issue_broker_certificate(issuer, ("10.213.0.2", "controller.demo.internal"))
    port = serve_tls_once(broker, tmp_path)
    assert stomp_connect_probe("127.0.0.1", port, timeout=5, tls_ca=paths.broker_ca_chain,
                               tls_server_name="controller.demo.internal") == (True, "")
    port = serve_tls_once(broker, tmp_path)
    ok, why = stomp_connect_probe("127.0.0.1", port, timeout=5, tls_ca=paths.broker_ca_chain,
                                  tls_server_name="web01.demo.internal")
    assert not ok and "not this environment's for web01.demo.internal" in why
    impostor = issue_broker_certificate(issue_master_ca(make_environment_ca("demo"), "demo"),
                                        ("10.213.0.2", "controller.demo.internal"))
    port = serve_tls_once(impostor, tmp_path)
    ok, why = stomp_connect_probe("127.0.0.1", port, timeout=5, tls_ca=paths.broker_ca_chain,
                                  tls_server_name="controller.demo.internal")
    assert not ok and "not this environment's" in why
    port = serve_tls_once(broker, tmp_path)  # stomp.py's own check, as the agents make it: the address
    assert not stomp_connect_probe("127.0.0.1", port, timeout=5, tls_ca=paths.broker_ca)[0]
