"""How the operator's own commands reach an environment from its state, so nothing is assembled by
hand: the master's broker with the environment's signing keys and pinned TLS certificate (ping, rpc,
reboot, puppet -f FILE), a node over SSH with its console-pinned host key and the operator key
(ssh), and a node's logs (logs).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from drbootstrap.errors import NotFoundError
from drbootstrap.executor.build import client_signing, provider_for
from drbootstrap.executor.secrets import ED25519, load_or_create_psk, signing_scheme
from drbootstrap.journal import Journal
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import build_plan
from drbootstrap.spec.models import EnvironmentSpec

if TYPE_CHECKING:
    from drbootstrap.providers.base import Provider
    from drbootstrap.ssh import SshTarget

# Where the images write each log on a node (images/*/boot.sh), relative to the node's node_dir.
NODE_LOGS = {"boot": "boot.log", "agent": "agent.log", "puppet": "puppet/var/state/last_run_summary.yaml"}
# The broker's log, on the nodes that run one: the master's ActiveMQ or RabbitMQ (boot.sh links
# broker.log to it), and a broker node's supervisor (its RabbitMQ's starts, ends and restarts).
MASTER_BROKER_LOG = "broker.log"
BROKER_NODE_LOG = "supervisor.log"


@dataclass(frozen=True)
class EnvironmentBroker:
    """What a client needs to talk to an environment's agents: everything but the filters."""

    broker: str  # stomp[+ssl]://HOST:PORT
    key_file: Path
    key_id: str | None
    trusted_keys_dir: Path | None
    tls_ca: Path | None
    protocol: str
    expected: list[str]  # every node's identity (its FQDN), for discovery that ends when all answered


def environment_broker(spec: EnvironmentSpec, state_dir: Path) -> EnvironmentBroker:
    """The master's broker address and the environment's own keys (ed25519 per-client keys, or the
    shared PSK), and the CA chain the broker is verified by when it speaks stomp+ssl."""
    from drbootstrap.images.from_spec import broker_uses_tls

    paths = EnvironmentPaths(state_dir, spec.environment)
    if not paths.journal.exists():
        raise NotFoundError(f"environment {spec.environment} has no state in {state_dir}",
                            hint=f"run `drbootstrap up {spec.source_path or 'FILE'}` first, or pass --state-dir")
    address = _master_address(spec, paths, provider_for(spec, paths))
    scheme = signing_scheme(spec, paths)
    signing = client_signing(scheme, spec, paths, load_or_create_psk(spec, state_dir))
    tls = broker_uses_tls(spec)
    plan = build_plan(spec)
    return EnvironmentBroker(
        broker=f"{'stomp+ssl' if tls else 'stomp'}://{address}:{spec.master.broker.port}",
        key_file=signing.key_file, key_id=None if scheme == ED25519 else "psk",
        trusted_keys_dir=signing.trusted_keys_dir, tls_ca=paths.broker_ca_chain if tls else None,
        protocol="native", expected=sorted(node.fqdn for node in plan.nodes()))


def _master_address(spec: EnvironmentSpec, paths: EnvironmentPaths, provider: Provider) -> str:
    node = provider.nodes().get(spec.master.hostname)
    address = provider.addresses(node).reachable if node is not None else None
    if address is None:
        record = Journal.at(paths).data.nodes.get(spec.master.hostname)
        address = record.address if record is not None else None
    if not address:
        raise NotFoundError(f"environment {spec.environment}: the master {spec.master.hostname} is not running",
                            hint=f"run `drbootstrap up {spec.source_path or 'FILE'}` to bring it back")
    return address


def node_ssh_target(spec: EnvironmentSpec, state_dir: Path, hostname: str) -> SshTarget:
    """Root on `hostname` at its reachable address, its host key pinned from its console output, with
    the environment's operator key; the same access `up` uses for the master on every cloud."""
    from drbootstrap.executor.ssh_access import SshNodeAccess

    paths = EnvironmentPaths(state_dir, spec.environment)
    provider = provider_for(spec, paths)
    node = provider.nodes().get(_known_hostname(spec, hostname))
    if node is None:
        raise NotFoundError(f"{hostname}: no such node running in environment {spec.environment}",
                            hint=f"see `drbootstrap status {spec.source_path or 'FILE'}`")
    return SshNodeAccess(provider).target(str(node.id))


def _known_hostname(spec: EnvironmentSpec, hostname: str) -> str:
    known = {node.hostname: node for node in build_plan(spec).nodes()}
    short = hostname.split(".", 1)[0] if hostname not in known else hostname
    if short not in known:
        raise NotFoundError(f"{hostname}: no node of that name in environment {spec.environment}",
                            hint=f"pick from: {', '.join(sorted(known))}")
    return short


@dataclass(frozen=True)
class NodeLogs:
    """A node's logs: its console output as the cloud keeps it (there even when the node is not
    reachable), and over SSH its boot script's log, its agent's log and Puppet's last run summary."""

    hostname: str
    console: str
    target: SshTarget
    node_dir: str
    broker_log: str | None = None  # relative to node_dir; None: this node runs no broker

    @property
    def logs(self) -> tuple[str, ...]:
        """The logs this node has, beside its console: boot, agent, puppet and, where one runs, broker."""
        return (*NODE_LOGS, "broker") if self.broker_log else tuple(NODE_LOGS)

    def path_of(self, which: str) -> str:
        if which == "broker":
            if self.broker_log is None:
                raise NotFoundError(f"{self.hostname} runs no broker: it has no broker log",
                                    hint="the master and the broker nodes (broker1, ...) have one")
            return f"{self.node_dir}/{self.broker_log}"
        return f"{self.node_dir}/{NODE_LOGS[which]}"

    def tail_command(self, which: str, *, follow: bool, lines: int) -> str:
        """The shell command that prints (or follows) one of NODE_LOGS on the node."""
        path = shlex.quote(self.path_of(which))
        if follow:
            return f"tail -n {lines} -F {path}"
        return f"if [ -e {path} ]; then tail -n {lines} {path}; else echo '(none yet)'; fi"


def node_logs(spec: EnvironmentSpec, state_dir: Path, hostname: str) -> NodeLogs:
    """Where `hostname`'s logs are, with its console output read from the cloud now."""
    from drbootstrap.executor.ssh_access import NODE_DIR, SshNodeAccess

    paths = EnvironmentPaths(state_dir, spec.environment)
    provider = provider_for(spec, paths)
    short = _known_hostname(spec, hostname)
    node = provider.nodes().get(short)
    if node is None:
        raise NotFoundError(f"{hostname}: no such node running in environment {spec.environment}",
                            hint=f"see `drbootstrap status {spec.source_path or 'FILE'}`")
    # The local cloud's nodes share this host's files: their node dir is under the state dir.
    node_dir = str(paths.nodes / short / "var") if provider.nodes_share_this_host else NODE_DIR
    return NodeLogs(short, provider.console_text(node), SshNodeAccess(provider).target(str(node.id)), node_dir,
                    broker_log_of(spec, short))


def broker_log_of(spec: EnvironmentSpec, hostname: str) -> str | None:
    """Where HOSTNAME's broker log is in its node dir; None when it runs no broker."""
    from drbootstrap.spec.broker_nodes import broker_node_names

    if hostname == spec.master.hostname:
        return MASTER_BROKER_LOG
    return BROKER_NODE_LOG if hostname in broker_node_names(spec.master.broker.replicas) else None
