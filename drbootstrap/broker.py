"""A private ActiveMQ broker from Debian's package: own conf and data dirs, STOMP (and stomp+ssl).

Used by the master image and by tests. Runs as root with its own directories (as user activemq
on a root-owned data dir it fails silently), persistence off, JMX off, NIO STOMP connectors and a
heap ceiling with room for 5,000 agents (the JVM takes only what it uses).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from xml.sax.saxutils import quoteattr

from drbootstrap.errors import MessagingError, PrerequisiteError, WaitTimeoutError

if TYPE_CHECKING:
    from drbootstrap.messaging.broker_ca import CertifiedKey

ACTIVEMQ_HOME = Path("/usr/share/activemq")
STARTUP_TIMEOUT = 60.0
MAX_CONNECTIONS = 10_000  # STOMP connections a broker takes: one per agent, plus clients
# The JVM's heap ceiling (-Xmx; the heap grows only as it is used). 256 MB held 1,000 agents but
# not 5,000: the old generation filled and the broker spent its time in full GCs, delivering
# nothing (tests/bench/bench_scale.py; RESULTS.md, "discovery at scale").
HEAP_MB = 1024

_LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.logger.org.apache.activemq.spring=WARN
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d | %-5p | %m | %c%n
"""


@dataclass(frozen=True)
class BrokerTls:
    """stomp+ssl material: a JKS/PKCS12 keystore for the broker, the PEM cert clients trust."""

    keystore: Path
    keystore_password: str
    cert_pem: Path


@dataclass
class BrokerConfig:
    base_dir: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    tls_port: int | None = None  # with tls: 0 picks a free port
    tls: BrokerTls | None = None
    plain_host: str | None = None  # where plain STOMP listens (default: host); loopback keeps it local
    heap_mb: int = HEAP_MB
    broker_name: str = "drbootstrap"
    extra_java_opts: list[str] = field(default_factory=list)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (bind port 0)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def open_files_limit() -> None:
    """Raise this process's soft open-file limit to its hard limit (at most 65,536) for a broker
    about to start: every agent is one socket, and a shell's usual soft limit of 1,024 stops a broker
    near 1,000 agents (a preexec_fn; RabbitMQ's own scripts and JVMs do not all raise it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65_536 if hard == resource.RLIM_INFINITY else min(hard, 65_536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def render_activemq_xml(config: BrokerConfig) -> str:
    """The broker's activemq.xml: STOMP connector(s), no persistence, no JMX, small memory."""
    plain = config.plain_host or config.host
    # NIO connectors: a few selector threads instead of one thread per connection (5,700 threads
    # for 5,000 agents with the blocking stomp:// transport).
    connectors = [f'<transportConnector name="stomp" uri={quoteattr(_uri("stomp+nio", plain, config.port))}/>']
    ssl_context = ""
    if config.tls is not None and config.tls_port:
        connectors.append(
            f'<transportConnector name="stomp+ssl" '
            f'uri={quoteattr(_uri("stomp+nio+ssl", config.host, config.tls_port))}/>'
        )
        ssl_context = (
            "<sslContext><sslContext "
            f"keyStore={quoteattr('file:' + str(config.tls.keystore))} "
            f"keyStorePassword={quoteattr(config.tls.keystore_password)}/></sslContext>"
        )
    data = config.base_dir / "data"
    return f"""<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName={quoteattr(config.broker_name)}
          useJmx="false" persistent="false" schedulerSupport="false"
          dataDirectory={quoteattr(str(data))}>
    <destinationPolicy><policyMap><policyEntries>
      <policyEntry queue=">" gcInactiveDestinations="true" inactiveTimoutBeforeGC="300000"/>
      <policyEntry topic=">" gcInactiveDestinations="true" inactiveTimoutBeforeGC="300000"/>
    </policyEntries></policyMap></destinationPolicy>
    {ssl_context}
    <systemUsage><systemUsage>
      <memoryUsage><memoryUsage limit="64 mb"/></memoryUsage>
      <tempUsage><tempUsage limit="256 mb"/></tempUsage>
    </systemUsage></systemUsage>
    <transportConnectors>
      {chr(10).join(connectors)}
    </transportConnectors>
  </broker>
</beans>
"""


def _uri(scheme: str, host: str, port: int) -> str:
    bracketed = f"[{host}]" if ":" in host else host
    # One connection per agent: room for 5,000 agents and their clients (tests/bench/bench_scale.py;
    # the process's open-file limit is raised to match, see open_files_limit); frames bounded at 2 MiB.
    return (f"{scheme}://{bracketed}:{port}?maximumConnections={MAX_CONNECTIONS}"
            "&wireFormat.maxFrameSize=2097152")


@dataclass
class RunningBroker:
    """What every private broker we start has (ActiveMQ here, RabbitMQ in rabbitmq.py): where it
    listens and the process we started. CONFIG: a BrokerConfig or a RabbitConfig."""

    config: Any
    process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return str(self.config.host)

    @property
    def port(self) -> int:
        return int(self.config.port)

    @property
    def tls_port(self) -> int | None:
        return cast("int | None", self.config.tls_port)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def url(self) -> str:
        return f"stomp://{self.host}:{self.port}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Broker(RunningBroker):
    """A running private ActiveMQ: where it listens, its pid and log; stop() and restart()."""

    config: BrokerConfig

    @property
    def log_path(self) -> Path:
        return self.config.base_dir / "activemq.log"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the JVM we started (its own process group), hard if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout)
        self.process = None

    def kill(self) -> None:
        """Kill the broker abruptly (as a crash would)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def restart(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Stop and start again on the same ports."""
        self.stop()
        self._launch(timeout)

    def _launch(self, timeout: float) -> None:
        java = shutil.which("java")
        jar = ACTIVEMQ_HOME / "bin" / "activemq.jar"
        if java is None or not jar.exists():
            raise PrerequisiteError(
                f"ActiveMQ is not installed ({jar} or java missing)", hint="apt-get install activemq"
            )
        base = self.config.base_dir
        conf = base / "conf"
        command = [
            java,
            f"-Xmx{self.config.heap_mb}m",
            "-Xss512k",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # faster start, enough for a control-plane broker
            "-Djava.awt.headless=true",
            f"-Dactivemq.home={ACTIVEMQ_HOME}",
            f"-Dactivemq.base={base}",
            f"-Dactivemq.conf={conf}",
            f"-Dactivemq.data={base / 'data'}",
            f"-Dlog4j.configuration=file:{conf / 'log4j.properties'}",
            *self.config.extra_java_opts,
            "-jar",
            str(jar),
            "start",
            f"xbean:file:{conf / 'activemq.xml'}",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=base, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=open_files_limit,
            )
        try:
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise MessagingError(
                    f"ActiveMQ exited during startup (see {self.log_path})",
                    hint="check the log for a port clash or a bad activemq.xml",
                )
            if stomp_connect_succeeds(self.config.plain_host or self.host, self.port, timeout=1.0):
                return
            if time.monotonic() > deadline:
                raise WaitTimeoutError(
                    f"ActiveMQ did not accept STOMP CONNECT on {self.config.plain_host or self.host}:{self.port} "
                    f"within {timeout:.0f}s",
                    hint=f"see {self.log_path}",
                )
            time.sleep(0.1)


def start_broker(
    base_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: BrokerTls | None = None,
    tls_port: int | None = None,
    plain_host: str | None = None,
    heap_mb: int = HEAP_MB,
    timeout: float = STARTUP_TIMEOUT,
) -> Broker:
    """Write conf into base_dir, start ActiveMQ, return once STOMP CONNECT succeeds (on plain_host,
    when given: loopback, so that only stomp+ssl is offered to the network)."""
    if os.geteuid() != 0:
        raise PrerequisiteError("starting a private ActiveMQ needs root", hint="run as root")
    base_dir = Path(base_dir).resolve()
    config = BrokerConfig(
        base_dir=base_dir,
        host=host,
        port=port or free_port(host),
        tls=tls,
        tls_port=(tls_port or free_port(host)) if tls else None,
        plain_host=plain_host,
        heap_mb=heap_mb,
    )
    conf = base_dir / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (base_dir / "data").mkdir(parents=True, exist_ok=True)
    (conf / "activemq.xml").write_text(render_activemq_xml(config))
    (conf / "log4j.properties").write_text(_LOG4J)
    if tls is not None:
        os.chmod(conf / "activemq.xml", 0o600)  # holds the keystore password
    broker = Broker(config)
    broker._launch(timeout)
    return broker


def stomp_connect_probe(host: str, port: int, *, timeout: float = 2.0, tls_ca: Path | None = None,
                       tls: bool = False, tls_server_name: str | None = None) -> tuple[bool, str]:
    """(True, "") when a STOMP 1.2 CONNECT to host:port gets CONNECTED back; else (False, why).

    Over TLS when TLS_CA is given (the broker's certificate must verify against it and name HOST,
    as stomp.py checks it; or name TLS_SERVER_NAME, as the controller checks it, TLS_CA then also
    holding the issuing CA) or TLS is set without one: readiness only, trusting nothing (the
    CONNECT carries no credential), for a broker whose certificate is checked once it answers."""
    reply = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if tls_ca is not None and tls_server_name is not None:
                from drbootstrap.messaging.broker_ca import certificate_problem

                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # the handshake proves the key; the chain is checked below
                wrapped = context.wrap_socket(raw)
                sock = wrapped
                problem = certificate_problem(wrapped.getpeercert(binary_form=True) or b"", tls_ca.read_text(),
                                              tls_server_name)
                if problem:
                    return False, f"STOMP {host}:{port}: {problem}"
            elif tls_ca is not None:
                context = ssl.create_default_context(cafile=str(tls_ca))
                sock = context.wrap_socket(raw, server_hostname=host)
            elif tls:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(raw)
            sock.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\0")
            while b"\0" not in reply and len(reply) < 4096:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                reply += chunk
            if reply.startswith(b"CONNECTED"):
                sock.sendall(b"DISCONNECT\n\n\0")
    except OSError as error:
        return False, f"STOMP {host}:{port}: {error.strerror or error}"
    if reply.startswith(b"CONNECTED"):
        return True, ""
    first_line = reply.split(b"\n", 1)[0].decode(errors="replace") or "connection closed"
    return False, f"STOMP {host}:{port} answered CONNECT with {first_line!r}"


def stomp_connect_succeeds(host: str, port: int, *, timeout: float = 2.0, tls_ca: Path | None = None) -> bool:
    """True when a STOMP CONNECT to host:port gets CONNECTED back (the broker really serves)."""
    return stomp_connect_probe(host, port, timeout=timeout, tls_ca=tls_ca)[0]


def make_self_signed_keystore(directory: Path, host: str = "127.0.0.1", also: tuple[str, ...] = ()) -> BrokerTls:
    """A self-signed broker certificate for stomp+ssl (keytool) naming `host` and `also` (addresses
    or DNS names), and its PEM for clients."""
    keytool = shutil.which("keytool")
    if keytool is None:
        raise PrerequisiteError("keytool is missing (needed for a broker TLS keystore)", hint="install a JDK")
    directory.mkdir(parents=True, exist_ok=True)
    keystore = directory / "broker.p12"
    cert = directory / "broker-cert.pem"
    password = secrets.token_hex(16)
    keystore.unlink(missing_ok=True)
    env = {**os.environ, "DRB_KS_PASS": password}  # not on a command line other users can read
    subprocess.run(
        [keytool, "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
         "-validity", "3650", "-dname", f"CN={host}", "-ext",
         "SAN=" + ",".join(f"IP:{name}" if _is_ip(name) else f"DNS:{name}" for name in (host, *also)),
         "-storetype", "PKCS12", "-keystore", str(keystore), "-storepass:env", "DRB_KS_PASS",
         "-keypass:env", "DRB_KS_PASS"],
        check=True, capture_output=True, env=env,
    )
    subprocess.run(
        [keytool, "-exportcert", "-rfc", "-alias", "broker", "-keystore", str(keystore),
         "-storepass:env", "DRB_KS_PASS", "-file", str(cert)],
        check=True, capture_output=True, env=env,
    )
    os.chmod(keystore, 0o600)
    return BrokerTls(keystore=keystore, keystore_password=password, cert_pem=cert)


def master_broker_tls(directory: Path, host: str, also: tuple[str, ...] = (),
                      issuer: CertifiedKey | None = None) -> BrokerTls:
    """The master's broker certificate: with ISSUER (the master's issuing CA from the environment's
    CA), a new one at every start naming HOST and ALSO, which every client verifies against the
    environment's CA; without, a self-signed one made on the first boot and kept (clients pin it).
    The keystore and its password are 0600, the password never on a command line."""
    from drbootstrap.paths import write_private_file

    password_file = directory / "keystore.password"
    material = BrokerTls(directory / "broker.p12", "", directory / "broker-cert.pem")
    if issuer is not None:
        from drbootstrap.messaging.broker_ca import broker_keystore, issue_broker_certificate

        password = secrets.token_hex(16)
        broker = issue_broker_certificate(issuer, (host, *also))
        write_private_file(password_file, password + "\n")
        write_private_file(material.keystore, broker_keystore(broker, password))
        material.cert_pem.write_text(broker.cert_pem)
        return BrokerTls(material.keystore, password, material.cert_pem)
    if material.keystore.is_file() and material.cert_pem.is_file() and password_file.is_file():
        return BrokerTls(material.keystore, password_file.read_text().strip(), material.cert_pem)
    made = make_self_signed_keystore(directory, host, also)
    write_private_file(password_file, made.keystore_password + "\n")
    return made


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return True
    except OSError:
        return False
