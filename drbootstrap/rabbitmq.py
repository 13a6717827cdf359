"""A private RabbitMQ node from Debian's package, serving STOMP (rabbitmq_stomp), like broker.py's ActiveMQ.

Used by the master image (`broker.kind: rabbitmq`) and by tests. Runs as root with its own base
directory: node name, Erlang cookie, database, logs, config and enabled_plugins all under it, its
own epmd on a private loopback port (in the same process group, stopped with the node), no AMQP
listener, no management plugin.

Credentials: a broker user made for this node with a random password, kept in rabbitmq.conf (0600)
and nowhere else (never on a command line, never logged). STOMP clients connect without a login, as
they do to ActiveMQ, and the STOMP plugin logs them in as that user (stomp.default_user): messages
are protected by their signatures, not by the broker's login. The guest user is never made.
MCollective's RabbitMQ connector needs its two topic exchanges (<collective>_broadcast,
<collective>_directed): they are declared at start from a definitions file.

A cluster (`broker.replicas`, RabbitCluster): each node in its own network namespace, named
drbootstrap@<its address> (long names: no DNS needed between brokers), epmd and distribution on
fixed ports of that address, the same Erlang cookie (a secret: copied from a 0600 file, never an
argument), joining the first node (the seed) by classic peer discovery; agents' directed queues
are mirrored to every node (ha-mode all), so they outlive the node that held them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from drbootstrap.broker import RunningBroker, free_port, open_files_limit, stomp_connect_probe
from drbootstrap.errors import MessagingError, PrerequisiteError, WaitTimeoutError
from drbootstrap.paths import write_private_file

if TYPE_CHECKING:
    from drbootstrap.messaging.broker_ca import CertifiedKey

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
STARTUP_TIMEOUT = 90.0
BROKER_USER = "drbootstrap"
DEFAULT_COLLECTIVES = ("mcollective",)
CLUSTER_EPMD_PORT = 4369  # the same on every node: Erlang asks a peer's epmd on its own port
CLUSTER_DIST_PORT = 25672


@dataclass(frozen=True)
class RabbitCluster:
    """This node's place in a cluster: its own address (its node name's host) and the seed's."""

    address: str
    seed: str
    cookie_file: Path  # 0600; its content becomes the node's .erlang.cookie

    @property
    def is_seed(self) -> bool:
        return self.address == self.seed


@dataclass(frozen=True)
class RabbitTls:
    """stomp+ssl material in PEM: the broker's certificate (with its chain), its key (0600), and
    the CA clients verify it by."""

    cert_file: Path
    key_file: Path
    ca_file: Path


@dataclass
class RabbitConfig:
    base_dir: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    tls: RabbitTls | None = None
    tls_port: int | None = None
    plain_host: str | None = None  # where plain STOMP listens (default: host); loopback keeps it local
    node_name: str = "drbootstrap"
    epmd_port: int = 0
    dist_port: int = 0
    collectives: tuple[str, ...] = DEFAULT_COLLECTIVES  # MCollective's exchanges declared for these
    password: str = field(default="", repr=False)
    cluster: RabbitCluster | None = None

    @property
    def node(self) -> str:
        """The Erlang node name: by address in a cluster, else private to this machine."""
        return f"{self.node_name}@{self.cluster.address}" if self.cluster else f"{self.node_name}@localhost"


def render_rabbitmq_conf(config: RabbitConfig) -> str:
    """rabbitmq.conf: STOMP listener(s) only, the node's own user for STOMP logins, small and quiet."""
    plain = config.plain_host or config.host
    lines = [
        "# drbootstrap's private RabbitMQ node (drbootstrap.rabbitmq); holds a password: 0600",
        "listeners.tcp = none",
        f"stomp.listeners.tcp.1 = {_endpoint(plain, config.port)}",
        f"stomp.default_user = {BROKER_USER}",
        f"stomp.default_pass = {config.password}",
        "stomp.implicit_connect = false",
        "loopback_users = none",
        f"load_definitions = {config.base_dir / 'definitions.json'}",
        "vm_memory_high_watermark.relative = 0.2",
        "disk_free_limit.absolute = 50MB",
        "log.file.level = info",
        "log.console = false",
    ]
    if config.cluster is not None:
        seed = RabbitConfig(config.base_dir, node_name=config.node_name,
                            cluster=RabbitCluster(config.cluster.seed, config.cluster.seed, Path()))
        lines += [
            "cluster_formation.peer_discovery_backend = classic_config",
            f"cluster_formation.classic_config.nodes.1 = {seed.node}",
            # Wait for the seed rather than form a cluster of one beside it.
            "cluster_formation.discovery_retry_limit = 120",
            "cluster_formation.discovery_retry_interval = 1000",
            "cluster_partition_handling = autoheal",
        ]
    if config.tls is not None and config.tls_port:
        lines += [
            f"stomp.listeners.ssl.1 = {_endpoint(config.host, config.tls_port)}",
            f"ssl_options.certfile = {config.tls.cert_file}",
            f"ssl_options.keyfile = {config.tls.key_file}",
            f"ssl_options.cacertfile = {config.tls.ca_file}",
            "ssl_options.verify = verify_none",
            "ssl_options.fail_if_no_peer_cert = false",
        ]
    return "\n".join(lines) + "\n"


def render_definitions(config: RabbitConfig) -> str:
    """Definitions loaded at start (they hold the node user's password hash: 0600): the user, its
    permissions on the default vhost, and MCollective's broadcast and directed topic exchanges (its
    RabbitMQ connector sends to /exchange/<collective>_broadcast/<agent> and _directed/<identity>)."""
    exchanges = [
        {"name": f"{collective}_{kind}", "vhost": "/", "type": "topic", "durable": True,
         "auto_delete": False, "internal": False, "arguments": {}}
        for collective in config.collectives for kind in ("broadcast", "directed")
    ]
    user = {"name": BROKER_USER, "password_hash": password_hash(config.password),
            "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}
    permissions = {"user": BROKER_USER, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
    definitions = {"users": [user], "vhosts": [{"name": "/"}], "permissions": [permissions],
                   "exchanges": exchanges}
    if config.cluster is not None:
        # Agents' directed queues outlive their node: mirrored everywhere, a mirror promoted on
        # failure (a request waits there while its agent reconnects). Broadcast subscriptions' and
        # clients' reply queues are not: each is its subscriber's own, made again where it
        # reconnects (mirroring them tripled a failover's work, and a promoted auto-delete reply
        # queue refused its client's new subscription as locked).
        definitions["policies"] = [{"vhost": "/", "name": "drbootstrap-mirrored", "pattern": r"^drb\..*\.node\.",
                                    "apply-to": "queues", "priority": 0,
                                    "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"}}]
    return json.dumps(definitions, indent=2) + "\n"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password)), 4-byte salt."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class RabbitBroker(RunningBroker):
    """A running private RabbitMQ node: where STOMP listens, its pid and log; stop(), kill(), restart()."""

    config: RabbitConfig

    @property
    def node_pid(self) -> int | None:
        """The Erlang VM's pid (RABBITMQ_PID_FILE): the process whose death is the node's, which a
        supervisor watches (the launcher shell, `pid`, then ends too and stops its epmd)."""
        try:
            return int((self.config.base_dir / "rabbitmq.beam.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def log_path(self) -> Path:
        return self.config.base_dir / "rabbitmq.log"

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the node and its epmd (their own process group), hard if they linger."""
        self._signal_group(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Kill the node abruptly (as a crash would)."""
        self._signal_group(signal.SIGKILL, 10.0)

    def wait(self) -> int:
        """Block until the node ends (its launcher shell ends with its Erlang VM); its exit status."""
        assert self.process is not None
        return self.process.wait()

    def restart(self, timeout: float = STARTUP_TIMEOUT) -> None:
        self.stop()
        self._launch(timeout)

    def _signal_group(self, signum: int, timeout: float) -> None:
        if self.process is None:
            return
        group = self.process.pid
        try:
            os.killpg(group, signum)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        # The whole group: the shell, beam, epmd, erl_child_setup; nothing of it outlives stop().
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            self.process.wait(timeout)
        self.process = None

    def environment(self) -> dict[str, str]:
        """The RABBITMQ_* settings that make this node private (no secrets: those are in files)."""
        base = self.config.base_dir
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(base),  # .erlang.cookie
            "LANG": "C.UTF-8",
            "ERL_EPMD_PORT": str(self.config.epmd_port),
            "ERL_EPMD_ADDRESS": self._epmd_address,
            "RABBITMQ_NODENAME": self.config.node,
            "RABBITMQ_USE_LONGNAME": "true" if self.config.cluster else "false",
            "RABBITMQ_BASE": str(base),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_LOGS": str(self.log_path),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.beam.pid"),
            "RABBITMQ_DIST_PORT": str(self.config.dist_port),
            "RABBITMQ_NODE_PORT": str(self.config.dist_port - 20000 if self.config.dist_port > 20000 else 5672),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-start_epmd false",
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        }

    @property
    def _epmd_address(self) -> str:
        return f"127.0.0.1,{self.config.cluster.address}" if self.config.cluster else "127.0.0.1"

    def _launch(self, timeout: float) -> None:
        epmd = shutil.which("epmd")
        if not RABBITMQ_SERVER.exists() or epmd is None:
            raise PrerequisiteError(f"RabbitMQ is not installed ({RABBITMQ_SERVER} or epmd missing)",
                                    hint="apt-get install rabbitmq-server")
        base = self.config.base_dir
        # epmd first, in the node's process group; the shell (the pid a supervisor watches) ends
        # when the node ends, and takes its epmd with it, so a crashed node leaves nothing behind.
        script = (f'"$1" -port {self.config.epmd_port} -address {self._epmd_address} & epmd=$!; '
                  'shift; "$@"; status=$?; kill "$epmd" 2>/dev/null; exit "$status"')
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["/bin/sh", "-c", script, "sh", epmd, str(RABBITMQ_SERVER)], cwd=base, env=self.environment(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=open_files_limit,
            )
        try:
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        host = self.config.plain_host or self.host
        while True:
            if self.process is None or self.process.poll() is not None:
                raise MessagingError(f"RabbitMQ exited during startup (see {self.log_path})",
                                     hint="check the log for a port clash or a bad rabbitmq.conf")
            ready, why = stomp_connect_probe(host, self.port, timeout=1.0)
            if ready:
                return
            if time.monotonic() > deadline:
                raise WaitTimeoutError(f"RabbitMQ did not accept STOMP CONNECT on {host}:{self.port} "
                                       f"within {timeout:.0f}s ({why})", hint=f"see {self.log_path}")
            time.sleep(0.2)


def start_rabbitmq(
    base_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: RabbitTls | None = None,
    tls_port: int | None = None,
    plain_host: str | None = None,
    collectives: tuple[str, ...] = DEFAULT_COLLECTIVES,
    cluster: RabbitCluster | None = None,
    timeout: float = STARTUP_TIMEOUT,
) -> RabbitBroker:
    """Write the node's files into BASE_DIR, start it, return once STOMP CONNECT succeeds (on
    PLAIN_HOST when given: loopback, so that only stomp+ssl is offered to the network). With
    CLUSTER, the node joins the seed's cluster (the seed must be running, or start meanwhile)."""
    if os.geteuid() != 0:
        raise PrerequisiteError("starting a private RabbitMQ needs root", hint="run as root")
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    (base_dir / "log").mkdir(exist_ok=True)
    # One user for the whole cluster (its users are shared): the password follows from the cookie.
    password = _cluster_password(cluster.cookie_file) if cluster else _node_password(base_dir)
    config = RabbitConfig(
        base_dir=base_dir, host=host, port=port or free_port(host), tls=tls,
        tls_port=(tls_port or free_port(host)) if tls else None, plain_host=plain_host,
        epmd_port=CLUSTER_EPMD_PORT if cluster else free_port(),
        dist_port=CLUSTER_DIST_PORT if cluster else free_port(), collectives=collectives, password=password,
        cluster=cluster,
    )
    write_private_file(base_dir / "rabbitmq.conf", render_rabbitmq_conf(config))
    write_private_file(base_dir / "definitions.json", render_definitions(config))
    (base_dir / "enabled_plugins").write_text("[rabbitmq_stomp].\n")
    (base_dir / "rabbitmq-env.conf").write_text("# settings come from drbootstrap.rabbitmq's environment\n")
    write_node_file(base_dir, config)
    cookie = base_dir / ".erlang.cookie"
    if cluster is not None:  # the cluster's shared cookie: read from its file, never passed around
        write_private_file(cookie, _read_cookie(cluster.cookie_file))
    elif not cookie.is_file():
        write_private_file(cookie, secrets.token_hex(20))
    os.chmod(cookie, 0o400)
    broker = RabbitBroker(config)
    broker._launch(timeout)
    return broker


NODE_FILE = "node.json"  # what the node is (no secrets): read back by rabbitmq_membership


def write_node_file(base_dir: Path, config: RabbitConfig) -> None:
    """The node's name, where plain STOMP listens and its cluster's seed node, for whoever reports
    on it (a broker node's agent)."""
    seed = None
    if config.cluster is not None:
        seed = f"{config.node_name}@{config.cluster.seed}"
    described = {"node": config.node, "stomp_host": config.plain_host or config.host, "stomp_port": config.port,
                 "seed": seed, "epmd_port": config.epmd_port}
    (base_dir / NODE_FILE).write_text(json.dumps(described) + "\n")


def _read_cookie(path: Path) -> str:
    try:
        cookie = path.read_text().strip()
    except OSError as error:
        raise PrerequisiteError(f"cannot read the broker cluster's cookie file {path}: {error.strerror}",
                                hint="the master writes it (0600) before the broker nodes start") from None
    if not cookie.isalnum() or len(cookie) < 20:
        raise MessagingError(f"the broker cluster's cookie in {path} is not 20+ letters and digits",
                             hint="remove it: a new one is made when the environment is rebuilt")
    return cookie


def _cluster_password(cookie_file: Path) -> str:
    return hashlib.sha256(b"drbootstrap broker user\0" + _read_cookie(cookie_file).encode()).hexdigest()


def _node_password(base_dir: Path) -> str:
    """The node user's password: made on the first start, kept (the database holds its hash)."""
    path = base_dir / "broker.password"
    if path.is_file():
        return path.read_text().strip()
    password = secrets.token_urlsafe(24)
    write_private_file(path, password + "\n")
    return password


def master_rabbitmq_tls(directory: Path, host: str, also: tuple[str, ...] = (),
                        issuer: CertifiedKey | None = None) -> RabbitTls:
    """The master's RabbitMQ certificate, as master_broker_tls makes ActiveMQ's: with ISSUER (the
    master's issuing CA), a new one at every start naming HOST and ALSO, which clients verify
    against the environment's CA; without, one under a CA of its own made on the first boot and kept
    (broker-cert.pem, which clients then pin). PEM files; the key 0600."""
    from drbootstrap.messaging.broker_ca import issue_broker_certificate, make_environment_ca

    material = RabbitTls(directory / "broker-leaf.pem", directory / "broker.key", directory / "broker-chain.pem")
    client_pem = directory / "broker-cert.pem"  # what a client trusts without the environment's CA
    if issuer is None and all(path.is_file() for path in (*_files(material), client_pem)):
        return material
    own_ca = issuer or make_environment_ca(f"{host} broker")
    broker = issue_broker_certificate(own_ca, (host, *also))
    leaf, _, _ = broker.cert_pem.partition("-----END CERTIFICATE-----\n")
    directory.mkdir(parents=True, exist_ok=True)
    write_private_file(material.key_file, broker.key_pem)
    material.cert_file.write_text(leaf + "-----END CERTIFICATE-----\n")
    material.ca_file.write_text(own_ca.cert_pem)
    client_pem.write_text(own_ca.cert_pem)
    return material


def _files(material: RabbitTls) -> tuple[Path, Path, Path]:
    return material.cert_file, material.key_file, material.ca_file
