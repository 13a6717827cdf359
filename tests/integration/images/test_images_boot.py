"""The master and worker images boot end to end on the local cloud: one master, two workers, one scenario.

The master's services are probed, recipes pushed over SSH (host key pinned from its console),
workers named through the master's dnsmasq and renamed by a reboot asked of their agent, and a
worker's Puppet agent signed by the one-time-token policy (another, without a valid token, refused).
Puppet's start-up pieces that once cost seconds (a 30 s TLS wait, 4096-bit keys, Facter errors) are
checked absent. Run with -s to see the measured times.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509

from drbootstrap.images import puppetserver_aot
from drbootstrap.images.autosign import new_token, token_digest
from drbootstrap.images.master_access import (
    arm_autosign_tokens,
    master_ssh_target,
    push_recipes,
)
from drbootstrap.images.probes import (
    BROKER,
    DNS,
    PUPPET_CA,
    ProbeReport,
    node_dir_log_reader,
    probe_master,
)
from drbootstrap.images.userdata import (
    EC2_USER_DATA_LIMIT,
    NodeBootConfig,
    render_user_data,
)
from drbootstrap.messaging.client import ClientConfig, RpcClient
from drbootstrap.messaging.envelope import FactFilter, Filter
from drbootstrap.paths import project_root
from drbootstrap.providers.local import LocalNodeDriver
from drbootstrap.ssh import HostKeyMismatchError
from tests.integration.local_cloud.support import free_network, leftovers, processes_of
from tests.support.prereq import require, require_binary, require_root

pytestmark = pytest.mark.integration

DOMAIN = "img.internal"
CONTROLLER = f"controller.{DOMAIN}"
WORKERS = ("db01", "mail01")  # db01 holds a valid token; mail01 one the master never armed
STATE_PREFIX = "drb-img-"


@dataclass
class Scenario:
    driver: LocalNodeDriver
    state: Path
    psk: str
    operator_key: Path
    master: object = None
    master_address: str = ""
    report: ProbeReport | None = None
    pushed_marker: str = ""
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    user_data: dict[str, str] = field(default_factory=dict, repr=False)
    workers: dict[str, object] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)

    def dirs(self, host: str) -> dict[str, str]:
        base = self.state / "nodes" / host
        return {"config_dir": str(base / "etc"), "node_dir": str(base / "var"),
                "images_dir": str(project_root() / "images")}

    def in_node(self, node: object, script: str, timeout: float = 60) -> subprocess.CompletedProcess:
        argv = self.driver.ex_enter_command(node, ["sh", "-c", script])
        return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)

    def client(self) -> RpcClient:
        key = self.state / "operator" / "agent.key"
        config = ClientConfig(brokers=[f"stomp://{self.master_address}:61613"], key_file=key,
                              identity="images-test", discovery_timeout=3.0, connect_timeout=30.0)
        return RpcClient(config)


def _require_parts() -> None:
    require_root()
    require_binary("ip", "unshare", "nsenter", "setsid", "dnsmasq", "java", "puppet", "sshd", "ssh-keygen", "dig")
    require(Path("/usr/share/activemq/bin/activemq.jar").exists(), "ActiveMQ (Debian activemq package)")
    require(Path("/usr/share/puppetserver/puppetserver.jar").exists(), "puppetserver (Debian puppetserver package)")


def _pushed_recipes(state: Path) -> tuple[Path, str]:
    """A copy of recipes/ whose db role also writes a marker only this copy knows."""
    copy = state / "recipes"
    shutil.copytree(project_root() / "recipes", copy)
    marker = secrets.token_hex(8)
    db = copy / "modules" / "role" / "manifests" / "db.pp"
    text = db.read_text().rstrip()
    assert text.endswith("}")
    db.write_text(text[:-1] + f'  file {{ "${{root}}/etc/db/pushed": ensure => file, content => "{marker}\\n" }}\n}}\n')
    return copy, marker


def _boot_master(scenario: Scenario) -> None:
    public_key = (scenario.operator_key.with_suffix(".pub")).read_text().strip()
    config = NodeBootConfig(
        environment="img", domain=DOMAIN, hostname="controller", role="master", image="master",
        broker_host=CONTROLLER, controller_name=CONTROLLER, agent_key=scenario.psk, python=sys.executable,
        ssh_authorized_keys=(public_key,), **scenario.dirs("controller"),
    )
    scenario.user_data["controller"] = render_user_data(config, allow_gzip=False).decode()
    started = time.monotonic()
    scenario.master = scenario.driver.create_node("controller", "medium", "master",
                                                  ex_userdata=scenario.user_data["controller"])
    scenario.driver.ex_wait_until_booted([scenario.master], timeout=120)
    scenario.times["master boot script done"] = time.monotonic() - started
    scenario.master_address = scenario.master.private_ips[0]
    scenario.report = probe_master(
        scenario.master_address, DOMAIN, "controller", 61613, 8140, timeout=300,
        log_reader=node_dir_log_reader(Path(scenario.dirs("controller")["node_dir"])),
    )
    for service in (DNS, BROKER, PUPPET_CA):
        seconds = scenario.report.seconds_to_ready(service)
        if seconds is not None:
            scenario.times[f"master {service} ready"] = scenario.times["master boot script done"] + seconds
    scenario.report.raise_if_not_ready()


def _push_and_arm(scenario: Scenario) -> None:
    console = Path(scenario.master.extra["console_log"]).read_text()
    target = master_ssh_target(scenario.master_address, console, scenario.operator_key, name="controller")
    recipes, scenario.pushed_marker = _pushed_recipes(scenario.state)
    push_recipes(target, recipes, scenario.dirs("controller")["node_dir"])
    scenario.tokens = {host: new_token() for host in WORKERS}
    arm_autosign_tokens(target, scenario.dirs("controller")["config_dir"],
                        {f"db01.{DOMAIN}": token_digest(scenario.tokens["db01"])}, python=sys.executable)


def _boot_workers(scenario: Scenario) -> None:
    started = time.monotonic()
    for host in WORKERS:
        config = NodeBootConfig(
            environment="img", domain=DOMAIN, hostname=host, role=host[:-2], image="worker",
            broker_host=scenario.master_address, master_address=scenario.master_address,
            controller_name=CONTROLLER, agent_key=scenario.psk, autosign_token=scenario.tokens[host],
            python=sys.executable, recipe_root=str(scenario.state / "nodes" / host / "root"), **scenario.dirs(host),
        )
        scenario.user_data[host] = render_user_data(config, allow_gzip=False).decode()
        scenario.workers[host] = scenario.driver.create_node(
            host, "small", "worker", ex_userdata=scenario.user_data[host]
        )
    scenario.driver.ex_wait_until_booted(list(scenario.workers.values()), timeout=120)
    scenario.times["workers running"] = time.monotonic() - started
    # Name them: forward + reverse in the master's dnsmasq, then a reboot asked of each agent.
    with scenario.client() as client:
        for host, node in scenario.workers.items():
            address = node.private_ips[0]
            reply = client.call("dns", "add", {"name": f"{host}.{DOMAIN}", "address": address, "replace": True},
                                targets=[CONTROLLER], timeout=30).replies
            assert reply and reply[0].status_code == 0, reply
            old = _identity_at(client, address)
            reply = client.call("reboot", "reboot", {"delay": 0.2}, targets=[old], timeout=30).replies
            assert reply and reply[0].status_code == 0, reply
        expected = [f"{host}.{DOMAIN}" for host in WORKERS]
        deadline = time.monotonic() + 90
        answered: set[str] = set()
        while set(expected) - answered and time.monotonic() < deadline:
            answered |= set(client.ping(Filter(identity=tuple(expected)), expect=expected).responded)
        scenario.times["workers answer under their new names"] = time.monotonic() - started
        assert answered == set(expected), f"only {sorted(answered)} came back renamed"


def _identity_at(client: RpcClient, address: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = client.ping(Filter(fact=(FactFilter("ip", "==", address),))).responded
        if found:
            return min(found)
        time.sleep(0.5)
    raise AssertionError(f"no agent answered for {address}")


@pytest.fixture(scope="module")
def scenario():
    _require_parts()
    state = Path(tempfile.mkdtemp(prefix=STATE_PREFIX, dir="/var/tmp"))  # nodes see /var/tmp, not our /tmp
    state.chmod(0o755)  # as /var/lib/drbootstrap: the master's dnsmasq can then drop root (secrets are 0600)
    driver = LocalNodeDriver(state_dir=state / "cloud", network=free_network(), images_dir=project_root() / "images")
    (state / "operator").mkdir()
    operator_key = state / "operator" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(operator_key)], check=True)
    psk = secrets.token_hex(24)
    (state / "operator" / "agent.key").write_text(psk)
    (state / "operator" / "agent.key").chmod(0o600)
    current = Scenario(driver, state, psk, operator_key)
    try:
        _boot_master(current)
        _push_and_arm(current)
        _boot_workers(current)
        print("\nimages scenario times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in current.times.items()))
        yield current
    finally:
        processes = processes_of(driver)
        driver.ex_cleanup()
        left = leftovers(driver, processes)
        shutil.rmtree(state, ignore_errors=True)
        assert left == [], left
        assert not list(Path("/var/tmp").glob(f"{state.name}*"))


def test_master_reports_dns_stomp_and_puppet_ca_ready(scenario):
    assert scenario.report.ready, scenario.report.summary()
    assert [s.service for s in scenario.report.services] == [DNS, BROKER, PUPPET_CA]


def test_master_prints_its_ssh_host_key_in_cloud_init_format_on_the_console(scenario):
    console = Path(scenario.master.extra["console_log"]).read_text()
    host_key = Path(scenario.dirs("controller")["node_dir"], "ssh", "ssh_host_ed25519_key.pub").read_text().split()
    block = console[console.index("-----BEGIN SSH HOST KEY KEYS-----"):console.index("-----END SSH HOST KEY KEYS-----")]
    assert " ".join(host_key[:2]) in block


def test_recipes_pushed_over_ssh_are_what_the_master_serves(scenario):
    served = Path(scenario.dirs("controller")["node_dir"], "puppet/code/environments/production")
    assert scenario.pushed_marker in (served / "modules/role/manifests/db.pp").read_text()
    assert (served / "manifests/site.pp").read_text() == (project_root() / "recipes/manifests/site.pp").read_text()


def test_a_master_whose_host_key_differs_from_the_console_is_refused(scenario, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    forged_console = ("-----BEGIN SSH HOST KEY KEYS-----\n" + Path(f"{other}.pub").read_text()
                      + "-----END SSH HOST KEY KEYS-----\n")
    target = master_ssh_target(scenario.master_address, forged_console, scenario.operator_key, name="controller")
    with pytest.raises(HostKeyMismatchError) as refused:
        push_recipes(target, scenario.state / "recipes", "/nonexistent")
    assert "host key" in str(refused.value) and "\n" not in refused.value.message


def test_each_worker_took_its_name_by_reboot_through_its_agent(scenario):
    for host, node in scenario.workers.items():
        assert scenario.in_node(node, "hostname").stdout.strip() == host
        assert node.extra["boot_count"] >= 1
        assert scenario.driver.ex_get_node(node.id).extra["boot_count"] == 2


def test_the_masters_dnsmasq_runs_as_its_own_user_not_root(scenario):
    pid = Path(scenario.dirs("controller")["node_dir"], "dns", "dnsmasq.pid").read_text().strip()
    assert scenario.in_node(scenario.master, f"ps -o user= -p {pid}").stdout.strip() == "dnsmasq"


def test_workers_resolve_the_controller_and_each_other_both_ways_through_the_master(scenario):
    addresses = {host: node.private_ips[0] for host, node in scenario.workers.items()}
    addresses["controller"] = scenario.master_address
    for host, node in scenario.workers.items():
        resolv = scenario.in_node(node, "cat /etc/resolv.conf").stdout
        assert f"nameserver {scenario.master_address}" in resolv
        for name, address in addresses.items():
            if name == host:
                continue
            forward = scenario.in_node(node, f"dig +short +time=2 {name}.{DOMAIN}").stdout.strip()
            reverse = scenario.in_node(node, f"dig +short +time=2 -x {address}").stdout.strip()
            assert (forward, reverse) == (address, f"{name}.{DOMAIN}."), f"from {host} for {name}"
        assert scenario.in_node(node, f"getent hosts {CONTROLLER}").stdout.split()[0] == scenario.master_address


def test_puppet_on_a_worker_is_signed_by_its_token_and_applies_the_pushed_manifest(scenario):
    started = time.monotonic()
    with scenario.client() as client:
        replies = client.call("puppet", "runonce", {"force": True}, targets=[f"db01.{DOMAIN}"], timeout=600).replies
    scenario.times["db01 first Puppet run"] = time.monotonic() - started
    print(
        "\ndb01 first Puppet run (CSR, policy autosign, first catalog): "
        f"{scenario.times['db01 first Puppet run']:.1f} s"
    )
    assert replies and replies[0].status_code == 0, replies and replies[0].data.get("output")
    assert replies[0].data["exitcode"] == 2  # changes applied
    assert "Error:" not in replies[0].data["output"], replies[0].data["output"]
    report = Path(scenario.dirs("db01")["node_dir"], "puppet/var/state/last_run_report.yaml").read_text()
    # Facter could not read /proc/1/environ: one error per fact using it, logged with source Facter.
    assert "source: Facter" not in report
    # The start-up (key, CSR, policy autosign, certificate) once waited out Jetty's 30 s idle timeout
    # on a reused TLS 1.3 connection: every first run's startup_time was over 30 s, now a few seconds.
    assert replies[0].data["summary"]["time"]["startup_time"] < 20, replies[0].data["summary"]["time"]
    ca = Path(scenario.dirs("controller")["node_dir"], "puppet", "ca")
    assert (ca / "signed" / f"db01.{DOMAIN}.pem").exists()
    root = scenario.state / "nodes" / "db01" / "root"
    seen = scenario.in_node(scenario.workers["db01"], f"cat {root}/srv/db/ready {root}/etc/db/pushed").stdout
    assert seen.split() == ["ready", scenario.pushed_marker]


def test_the_puppet_server_refuses_tls_1_3_whose_late_session_tickets_stall_ruby_clients(scenario):
    def handshake(version: ssl.TLSVersion) -> str | None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        context.minimum_version = context.maximum_version = version
        with socket.create_connection((scenario.master_address, 8140), timeout=10) as raw:
            with context.wrap_socket(raw) as tls:
                return tls.version()

    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        handshake(ssl.TLSVersion.TLSv1_3)


def test_ca_server_and_agent_keys_are_2048_bit_and_the_access_log_is_the_masters_own(scenario):
    master = Path(scenario.dirs("controller")["node_dir"], "puppet")
    agent = Path(scenario.dirs("db01")["node_dir"], "puppet")
    pems = [master / "ca" / "ca_crt.pem", master / "ssl" / "certs" / f"controller.{DOMAIN}.pem",
            agent / "ssl" / "certs" / f"db01.{DOMAIN}.pem"]
    assert [x509.load_pem_x509_certificate(pem.read_bytes()).public_key().key_size for pem in pems] == [2048] * 3
    assert f"GET /puppet-ca/v1/certificate/db01.{DOMAIN}" in (master / "log" / "puppetserver-access.log").read_text()


def test_puppetserver_runs_from_the_images_compiled_jar_when_the_image_has_one(scenario):
    node_dir = Path(scenario.dirs("controller")["node_dir"])
    pid = (node_dir / "puppetserver.pid").read_text().strip()
    command_line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    jar = puppetserver_aot.lookup()
    if jar is None:  # an image made without it: the server compiles its Clojure at each start
        assert "-jar /usr/share/puppetserver/puppetserver.jar" in command_line
        assert "compiles its Clojure at start" in (node_dir / "boot.log").read_text()
    else:
        assert f"-cp {jar}:" in command_line


def test_a_worker_without_a_valid_token_is_refused_its_certificate(scenario):
    with scenario.client() as client:
        replies = client.call("puppet", "runonce", {"force": True}, targets=[f"mail01.{DOMAIN}"], timeout=300).replies
    assert replies and replies[0].status_code != 0
    ca = Path(scenario.dirs("controller")["node_dir"], "puppet", "ca")
    assert (ca / "requests" / f"mail01.{DOMAIN}.pem").exists()  # the CSR arrived and waits
    assert not (ca / "signed" / f"mail01.{DOMAIN}.pem").exists()
    root = scenario.state / "nodes" / "mail01" / "root"
    assert not (root / "etc" / "mailname").exists()


def test_each_nodes_user_data_fits_and_holds_only_its_own_secrets(scenario):
    operator_private = scenario.operator_key.read_text()
    for host, text in scenario.user_data.items():
        assert len(text.encode()) <= EC2_USER_DATA_LIMIT
        assert text.startswith("#cloud-config\n")
        assert operator_private.splitlines()[1] not in text
        for other in WORKERS:
            assert (scenario.tokens[other] in text) == (other == host), f"{other}'s token in {host}'s user-data"
    assert "BEGIN OPENSSH PRIVATE KEY" not in "".join(scenario.user_data.values())


def test_the_refused_worker_runs_puppet_once_the_operator_signs_it_explicitly(scenario):
    puppet_conf = Path(scenario.dirs("controller")["node_dir"], "puppet", "puppet.conf")
    signed = scenario.in_node(
        scenario.master, f"puppetserver ca sign --config {puppet_conf} --certname mail01.{DOMAIN}", timeout=180
    )
    assert signed.returncode == 0, signed.stdout + signed.stderr
    with scenario.client() as client:
        replies = client.call("puppet", "runonce", {"force": True}, targets=[f"mail01.{DOMAIN}"], timeout=300).replies
    assert replies and replies[0].status_code == 0, replies and replies[0].data.get("output")
    root = scenario.state / "nodes" / "mail01" / "root"
    assert scenario.in_node(scenario.workers["mail01"], f"cat {root}/etc/mailname").stdout == f"mail01.{DOMAIN}\n"
