"""Is the master ready? One probe per service (DNS, STOMP, Puppet CA), each with a reason and log tail.

    report = probe_master("10.213.0.11", "demo.internal", "controller", 61613, 8140, timeout=180,
                          log_reader=node_dir_log_reader(node_dir))
    report.ready; report.seconds_to_ready("puppet-ca"); report.raise_if_not_ready()

The one place that decides what "master ready" means: the executor's `up` calls this
(probe_master_for_spec takes the names and ports from the environment spec).
"""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from drbootstrap.broker import stomp_connect_probe
from drbootstrap.errors import WaitTimeoutError

if TYPE_CHECKING:
    from drbootstrap.spec.models import EnvironmentSpec

DNS, BROKER, PUPPET_CA = "dns", "broker", "puppet-ca"
# Where each service of images/master/boot.sh logs, relative to the master's node dir.
SERVICE_LOGS = {
    DNS: "dns/dnsmasq.log",
    BROKER: "broker.log",  # boot.sh links it to ActiveMQ's or RabbitMQ's log
    PUPPET_CA: "puppet/log/puppetserver.log",
    "agent": "agent.log",
    "ssh": "ssh/sshd.log",
    "boot": "boot.log",
}
LOG_TAIL_LINES = 15

LogReader = Callable[[str], str]  # service name -> the tail of its log ("" when unknown)


class MasterNotReady(WaitTimeoutError):
    """A master service did not answer in time; the message names it and why, log_tail its logs."""

    def __init__(self, message: str, *, hint: str | None = None, log_tail: str = "") -> None:
        super().__init__(message, hint=hint)
        self.log_tail = log_tail


@dataclass(frozen=True)
class ServiceStatus:
    """One service's probe: ready or not, when it first answered, and if not, why (one line)."""

    service: str
    ready: bool
    seconds: float | None = None  # from the start of probe_master to the first good answer
    reason: str = ""
    log_tail: str = ""

    def line(self) -> str:
        if self.ready:
            return f"{self.service}: ready after {self.seconds:.1f} s"
        return f"{self.service}: NOT ready: {self.reason}"


@dataclass(frozen=True)
class ProbeReport:
    """Every probed service of the master at ADDRESS, in probe order."""

    address: str
    services: tuple[ServiceStatus, ...] = field(default_factory=tuple)

    @property
    def ready(self) -> bool:
        return all(status.ready for status in self.services)

    @property
    def failures(self) -> tuple[ServiceStatus, ...]:
        return tuple(status for status in self.services if not status.ready)

    def status(self, service: str) -> ServiceStatus:
        return next(status for status in self.services if status.service == service)

    def seconds_to_ready(self, service: str) -> float | None:
        return self.status(service).seconds

    def summary(self) -> str:
        return "; ".join(status.line() for status in self.services)

    def raise_if_not_ready(self) -> None:
        """MasterNotReady naming every failed service and its reason; the log tails in .log_tail."""
        if self.ready:
            return
        reasons = "; ".join(f"{s.service}: {s.reason}" for s in self.failures)
        raise MasterNotReady(
            f"master {self.address} not ready: {reasons}",
            hint="see each service's log on the master (its node dir: " + ", ".join(
                SERVICE_LOGS.get(s.service, s.service) for s in self.failures) + ")",
            log_tail="\n".join(f"--- {s.service}\n{s.log_tail or '(no log available)'}" for s in self.failures),
        )


def probe_master(
    address: str,
    domain: str,
    controller_name: str,
    broker_port: int = 61613,
    puppet_port: int = 8140,
    timeout: float = 180.0,
    *,
    puppet: bool = True,
    dns_port: int = 53,
    log_reader: LogReader | None = None,
    poll_interval: float = 0.5,
    broker_tls: bool = False,
    services: Collection[str] | None = None,
) -> ProbeReport:
    """Poll the master's services until all answer or TIMEOUT seconds pass; never raises for a
    service that is down (the report says which and why; call raise_if_not_ready for an error).

    DNS: A of the controller's name is ADDRESS and its PTR is the name. Broker: STOMP CONNECT is
    answered CONNECTED. Puppet CA (when PUPPET): GET /puppet-ca/v1/certificate/ca returns the CA's
    certificate. CONTROLLER_NAME may be short (DOMAIN is appended) or fully qualified. SERVICES,
    when given, probes only those of DNS, BROKER, PUPPET_CA (`up` waits for the CA separately).
    """
    fqdn = controller_name if "." in controller_name else f"{controller_name}.{domain}"
    checks: dict[str, Callable[[], tuple[bool, str]]] = {
        DNS: lambda: dns_answers(address, fqdn, port=dns_port),
        BROKER: lambda: stomp_connect_probe(address, broker_port, timeout=3.0, tls=broker_tls),
    }
    if puppet:
        checks[PUPPET_CA] = lambda: puppet_ca_answers(address, puppet_port)
    if services is not None:
        checks = {service: check for service, check in checks.items() if service in services}
    started = time.monotonic()
    deadline = started + timeout
    ready: dict[str, float] = {}
    reasons: dict[str, str] = {}
    while True:
        for service, check in checks.items():
            if service in ready:
                continue
            ok, reason = check()
            if ok:
                ready[service] = time.monotonic() - started
            else:
                reasons[service] = reason
        if len(ready) == len(checks) or time.monotonic() >= deadline:
            break
        time.sleep(poll_interval)
    statuses = []
    for service in checks:
        if service in ready:
            statuses.append(ServiceStatus(service, True, round(ready[service], 2)))
        else:
            tail = _read_tail(log_reader, service)
            statuses.append(ServiceStatus(service, False, None, f"{reasons[service]} (after {timeout:.0f} s)", tail))
    return ProbeReport(address, tuple(statuses))


def probe_master_for_spec(
    address: str, spec: EnvironmentSpec, timeout: float, *, log_reader: LogReader | None = None,
    services: Collection[str] | None = None,
) -> ProbeReport:
    """probe_master with the spec's domain, controller name and broker port (stomp+ssl when the spec
    asks); the CA only in server mode."""
    from drbootstrap.images.from_spec import broker_uses_tls

    return probe_master(
        address, str(spec.domain), spec.fqdn(spec.master.hostname), spec.master.broker.port,
        timeout=timeout, puppet=spec.master.puppet.mode == "server", log_reader=log_reader,
        broker_tls=broker_uses_tls(spec), services=services,
    )


def _read_tail(log_reader: LogReader | None, service: str) -> str:
    if log_reader is None:
        return ""
    try:
        return log_reader(service)
    except Exception as error:  # noqa: BLE001 - a log we cannot read must not hide the probe's reason
        return f"(could not read the {service} log: {error})"


# ---- the checks: (answered as expected, one-line reason when not) ------------------------------


def dns_answers(address: str, fqdn: str, *, port: int = 53, timeout: float = 2.0) -> tuple[bool, str]:
    """The master's DNS maps FQDN to ADDRESS and ADDRESS back to FQDN."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rdatatype
    import dns.reversename

    try:
        forward = dns.query.udp(dns.message.make_query(fqdn, dns.rdatatype.A), address, timeout=timeout, port=port)
        addresses = {item.to_text() for rrset in forward.answer for item in rrset if rrset.rdtype == dns.rdatatype.A}
        if address not in addresses:
            return False, f"DNS at {address}:{port} answers {fqdn} with {sorted(addresses) or 'no A record'}"
        reverse_query = dns.message.make_query(dns.reversename.from_address(address), dns.rdatatype.PTR)
        reverse = dns.query.udp(reverse_query, address, timeout=timeout, port=port)
        names = {item.to_text().rstrip(".") for rrset in reverse.answer for item in rrset}
    except dns.exception.Timeout:
        return False, f"DNS at {address}:{port} did not answer within {timeout:.0f} s"
    except (dns.exception.DNSException, OSError) as error:
        return False, f"DNS at {address}:{port}: {error}"
    if fqdn not in names:
        return False, f"DNS at {address}:{port} has no PTR {address} -> {fqdn} (has {sorted(names) or 'none'})"
    return True, ""


def puppet_ca_answers(address: str, port: int = 8140, *, timeout: float = 10.0) -> tuple[bool, str]:
    """The Puppet CA serves its certificate (unverified TLS: that certificate is what we fetch)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection(address, port, timeout=timeout, context=context)
    try:
        connection.request("GET", "/puppet-ca/v1/certificate/ca", headers={"Accept": "text/plain"})
        response = connection.getresponse()
        body = response.read(65536)
    except (OSError, http.client.HTTPException) as error:
        return False, f"Puppet CA {address}:{port}: {getattr(error, 'strerror', None) or error or type(error).__name__}"
    finally:
        connection.close()
    if response.status == 200 and b"BEGIN CERTIFICATE" in body:
        return True, ""
    return False, f"Puppet CA {address}:{port} answered HTTP {response.status} {response.reason}"


# ---- where the log tails come from -------------------------------------------------------------


def node_dir_log_reader(node_dir: Path, lines: int = LOG_TAIL_LINES) -> LogReader:
    """Logs read from the master's node dir where this host sees it (the local cloud)."""

    def read(service: str) -> str:
        path = Path(node_dir) / SERVICE_LOGS.get(service, f"{service}.log")
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log at {path})"
        return "\n".join(text.splitlines()[-lines:])

    return read


def command_log_reader(run: Callable[[list[str]], str], node_dir: str, lines: int = LOG_TAIL_LINES) -> LogReader:
    """Logs read by running `tail` on the master, e.g. over SSH or the local cloud's ex_enter_command."""

    def read(service: str) -> str:
        return run(["tail", "-n", str(lines), f"{node_dir}/{SERVICE_LOGS.get(service, service + '.log')}"])

    return read
