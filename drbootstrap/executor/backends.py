"""The real seams: the broker (RPC client), the local cloud's nodes (nsenter) and the master's probes."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

from drbootstrap.errors import MessagingError, ProviderError, WaitTimeoutError
from drbootstrap.messaging.envelope import FactFilter, Filter
from drbootstrap.spec.models import EnvironmentSpec


class RpcCallFailed(MessagingError):
    """An agent answered with a failed status; `data` holds its reply (Puppet output, exit code)."""

    def __init__(self, message: str, data: dict[str, Any], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.data = data
        self.log_tail = str(data.get("output", "")) if isinstance(data, dict) else ""


class RpcFleet:
    """The Fleet seam over drbootstrap.messaging.client.RpcClient (one connection per thread)."""

    def __init__(self, broker: str, key_file: Path, *, connect_timeout: float = 30.0) -> None:
        from drbootstrap.messaging.client import ClientConfig, RpcClient

        config = ClientConfig(brokers=[broker], key_file=key_file, identity="drbootstrap-up",
                              connect_timeout=connect_timeout, discovery_timeout=2.0)
        self.client = RpcClient(config).__enter__()

    def discover(self, expect: list[str], timeout: float) -> set[str]:
        if not expect:
            return set()
        self.client.config.discovery_timeout = timeout
        result = self.client.ping(Filter(identity=tuple(expect)), expect=expect)
        return set(result.responded) & set(expect)

    def identity_at(self, address: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.client.config.discovery_timeout = min(3.0, timeout)
            answered = self.client.ping(Filter(fact=(FactFilter("ip", "==", address),))).responded
            if answered:
                return min(answered)
            time.sleep(0.5)
        return None

    def call(self, identity: str, agent: str, action: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        result = self.client.call(agent, action, data, targets=[identity], timeout=timeout)
        if not result.replies:
            raise MessagingError(f"{identity} did not answer {agent}.{action} within {timeout:.0f} s",
                                 hint="check that its agent runs and reaches the broker")
        reply = result.replies[0]
        if reply.status_code != 0:
            raise RpcCallFailed(f"{identity}: {agent}.{action} failed: {reply.status_message}", dict(reply.data or {}))
        return dict(reply.data or {})

    def close(self) -> None:
        self.client.__exit__(None, None, None)


class LocalNodeAccess:
    """NodeAccess on the local cloud: commands through nsenter, the master's files on this host.

    Each node's config_dir and node_dir live under the environment's state directory, because
    a local node shares this host's filesystem (see drbootstrap.providers.local).
    """

    def __init__(self, driver_factory: Any, nodes_dir: Path, images_dir: Path, recipes_dir: Path) -> None:
        self.driver_factory = driver_factory
        self.nodes_dir, self.images_dir, self.recipes_dir = nodes_dir, images_dir, recipes_dir

    def node_dirs(self, hostname: str) -> dict[str, str]:
        base = self.nodes_dir / hostname
        return {"config_dir": str(base / "etc"), "node_dir": str(base / "var"),
                "images_dir": str(self.images_dir), "recipes_dir": str(self.recipes_dir)}

    def master_hostname_dirs(self, master_hostname: str) -> dict[str, str]:
        return self.node_dirs(master_hostname)

    def run(self, node_id: str, command: str, timeout: float) -> tuple[int, str]:
        argv = self.driver_factory().ex_enter_command(node_id, ["sh", "-c", command])
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {timeout:.0f} s"
        return done.returncode, _tail(done.stdout + done.stderr)

    def push_recipes(self, master_id: str, source: Path) -> str:
        target = self._master_dir(master_id) / "var" / "puppet" / "code" / "environments" / "production"
        staging = target.with_name(target.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return f"recipes copied to {target}"

    def arm_autosign(self, master_id: str, certname: str, digest: str) -> None:
        from drbootstrap.images.autosign import record_token_digest

        record_token_digest(self._master_dir(master_id) / "etc" / "autosign-tokens.json", certname, digest)

    def sign_certificate(self, master_id: str, certname: str) -> None:
        confdir = self._master_dir(master_id) / "var" / "puppet"
        status, output = self.run(master_id, f"puppetserver ca sign --config {confdir}/puppet.conf "
                                  f"--certname {certname}", 120)
        if status != 0:
            raise ProviderError(f"signing {certname} on the master failed (exit {status}): {output.splitlines()[-1:]}")

    def _master_dir(self, master_id: str) -> Path:
        node = self.driver_factory().ex_get_node(master_id)
        return self.nodes_dir / node.name


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


# ---- the master's services --------------------------------------------------------------------


def probe_master_services(address: str, spec: EnvironmentSpec, deadline: float) -> str:
    """Wait for DNS (the controller's name), STOMP CONNECT and, in server mode, the Puppet CA."""
    controller = spec.fqdn(spec.master.hostname)
    probes = [("DNS", lambda: _dns_answers(address, controller)),
              ("STOMP", lambda: _stomp_connects(address, spec.master.broker.port))]
    if spec.master.puppet.mode == "server":
        probes.append(("Puppet CA", lambda: _puppet_ca_answers(address)))
    timings = []
    started = time.monotonic()
    for name, probe in probes:
        last = ""
        while True:
            ok, last = probe()
            if ok:
                timings.append(f"{name} after {time.monotonic() - started:.1f} s")
                break
            if time.monotonic() > deadline:
                raise WaitTimeoutError(f"master service {name} at {address} did not answer: {last}",
                                       hint="see the master's boot.log and service logs under its node dir")
            time.sleep(0.5)
    return ", ".join(timings)


def _dns_answers(address: str, name: str) -> tuple[bool, str]:
    import dns.exception
    import dns.message
    import dns.query
    import dns.rdatatype

    try:
        answer = dns.query.udp(dns.message.make_query(name, dns.rdatatype.A), address, timeout=1.0)
    except (dns.exception.DNSException, OSError) as error:
        return False, f"no answer for {name} ({type(error).__name__})"
    return bool(answer.answer), f"no A record for {name}"


def _stomp_connects(address: str, port: int) -> tuple[bool, str]:
    try:
        with socket.create_connection((address, port), timeout=2.0) as sock:
            sock.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
            sock.settimeout(3.0)
            reply = sock.recv(64)
    except OSError as error:
        return False, f"STOMP port {port}: {error.strerror or error}"
    return reply.startswith(b"CONNECTED"), f"STOMP answered {reply[:20]!r}"


def _puppet_ca_answers(address: str) -> tuple[bool, str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the CA's own certificate is what we are fetching
    try:
        with socket.create_connection((address, 8140), timeout=2.0) as raw, \
                context.wrap_socket(raw) as sock:
            sock.settimeout(10.0)
            sock.sendall(b"GET /puppet-ca/v1/certificate/ca HTTP/1.0\r\nHost: puppet\r\n\r\n")
            head = sock.recv(64)
    except OSError as error:
        return False, f"port 8140: {getattr(error, 'strerror', None) or error}"
    return head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")), f"CA answered {head[:30]!r}"
