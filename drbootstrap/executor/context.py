"""What a run works with: the spec, the journal, and the seams to the cloud, the broker and the nodes.

Every step is a function of a `RunContext`; tests build one with fakes (cloud driver, fleet, access).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drbootstrap.backups.choose import VolumeRestore
from drbootstrap.clock import Clock, SystemClock
from drbootstrap.executor.events import Event
from drbootstrap.journal import Journal
from drbootstrap.messaging.keys import EnvironmentKeys
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import Plan, PlannedNode, Step
from drbootstrap.providers.base import Provider
from drbootstrap.spec.models import EnvironmentSpec

if TYPE_CHECKING:
    from drbootstrap.backups.master_state import MasterStateChoice


class Fleet(Protocol):
    """The broker as the executor sees it (RPC over STOMP in production, a fake in unit tests).

    One Fleet per thread: the RPC client is not thread-safe.
    """

    def discover(self, expect: list[str], timeout: float) -> set[str]:
        """Which of `expect` answer a ping within `timeout` (returns early when all did)."""

    def identity_at(self, address: str, timeout: float) -> str | None:
        """The identity of the agent whose `ip` fact is `address`, if one answers."""

    def call(self, identity: str, agent: str, action: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        """agent.action on one node; its reply data. Raises MessagingError on silence or a failed status."""

    def close(self) -> None: ...


class NodeAccess(Protocol):
    """Reaching into a node without the broker, keyed by the node's id: commands (local: nsenter;
    else SSH), and the master's Puppet CA (its recipes, autosign tokens and certificate signing)."""

    def run(self, node_id: str, command: str, timeout: float) -> tuple[int, str]:
        """Run a shell command inside the node; (exit status, output tail)."""

    def push_recipes(self, master_id: str, source: Path) -> str:
        """Put recipes/ where the master's Puppet server reads its code; a one-line detail."""

    def arm_autosign(self, master_id: str, certname: str, digest: str) -> None:
        """Record a one-time autosign token digest for certname on the master."""

    def sign_certificate(self, master_id: str, certname: str) -> None:
        """Sign a waiting certificate request on the master (autosign: manual)."""

    def node_dirs(self, hostname: str) -> dict[str, str]:
        """Per-node config_dir/node_dir/images_dir/recipes_dir for the user-data ({} = image defaults)."""

    def node_path(self, hostname: str, path: str) -> str:
        """Where a spec path (a volume's mount point) is for this node's recipes (identity on a real node)."""


class ServiceProbe(Protocol):
    def __call__(self, address: str, spec: EnvironmentSpec, deadline: float, *, puppet_ca: bool = False) -> str:
        """Wait until the master's DNS and STOMP answer (`puppet_ca`: its Puppet CA); a detail line."""


MASTER_SSH_AT_ONCE = 4  # SSH sessions to the master at once (sshd resets handshakes past MaxStartups)


@dataclass
class UpOptions:
    redo: frozenset[Step] = frozenset()
    only: frozenset[str] = frozenset()  # work on these hostnames only (empty: every node)
    only_failed: bool = False  # `--only FAILED`: also every node the journal says is not complete
    relaunch: frozenset[str] = frozenset()  # replace these nodes from launch (the watcher's resurrection)
    boot_timeout: float = 600.0
    services_timeout: float = 600.0
    name_timeout: float = 180.0
    discover_timeout: float = 120.0
    broker_timeout: float = 300.0  # a broker node's RabbitMQ running and in the master's cluster (the broker step)
    puppet_timeout: float = 900.0
    rpc_timeout: float = 60.0
    pipeline_threads: int = 64  # nodes in flight; launches are separately bounded by max_parallel
    until: Step | None = None  # stop each node's pipeline after this step (`up --until launch`: provision only)
    # Restores (volumes marked `backup:`): whose backups (None: the spec's environment; a drill names
    # production), the newest at or before `as_of`, or exactly these `backup_ids`.
    backup_environment: str | None = None
    as_of: float | None = None
    backup_ids: tuple[str, ...] = ()
    verify_timeout: float = 960.0  # a restored volume's manifest, computed on the node (its agent stops at 900 s)
    # Tags every node this run launches carries besides the environment's own (a drill's id and expiry).
    node_tags: Mapping[str, str] = field(default_factory=dict)
    heartbeat_seconds: float = 10.0  # a node in one step this long gets a heartbeat event, and again after as long


@dataclass
class NodeRuntime:
    """What the run learns about one node while it works on it. The runner copies the node's identity
    (provider id, client token, address) into the journal after each step."""

    planned: PlannedNode
    provider_node: Any = None  # libcloud Node
    address: str | None = None  # where the other nodes reach it (the private address in a cloud)
    public_address: str | None = None  # where this controller reaches it, when not `address`
    client_token: str | None = None  # the idempotency token of the launch that made it

    def forget(self) -> None:
        """The node is gone (destroyed or lost): nothing of it is known any more."""
        self.provider_node = self.address = self.public_address = self.client_token = None

    @property
    def reachable_address(self) -> str | None:
        """The address this controller connects to (broker, probes, SSH)."""
        return self.public_address or self.address

    @property
    def hostname(self) -> str:
        return self.planned.hostname

    @property
    def fqdn(self) -> str:
        return self.planned.fqdn


@dataclass
class RunContext:
    spec: EnvironmentSpec
    plan: Plan
    journal: Journal
    provider: Provider  # the cloud: every cloud call goes through it
    fleet_factory: Callable[[str], Fleet]  # broker host -> a connected Fleet
    access: NodeAccess
    probe_services: ServiceProbe
    psk: str = field(repr=False, default="")
    keys: EnvironmentKeys | None = None  # per-client ed25519 keys; None: every party signs with the PSK
    max_parallel: int = 8
    clock: Clock = field(default_factory=SystemClock)
    options: UpOptions = field(default_factory=UpOptions)
    emit: Callable[[Event], None] = lambda event: None
    paths: EnvironmentPaths = field(default_factory=lambda: EnvironmentPaths(Path("."), ""))
    recipes_dir: Path | None = None
    master: NodeRuntime | None = None
    # (hostname, volume) -> the backups to restore it from, chosen before anything is launched
    restores: dict[tuple[str, str], VolumeRestore] = field(default_factory=dict)
    # master.restore: the master-state archive its launch offers, chosen and checked before anything is launched
    master_state: MasterStateChoice | None = None
    launch_slots: threading.Semaphore = field(init=False)
    master_ssh_slots: threading.Semaphore = field(init=False)
    _local: threading.local = field(init=False, default_factory=threading.local)
    _fleets: list[Fleet] = field(init=False, default_factory=list)
    _fleets_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.launch_slots = threading.BoundedSemaphore(max(1, self.max_parallel))
        # Workers now launch while the master is still starting its Puppet server, each arming its
        # autosign token over SSH: more concurrent handshakes than sshd's MaxStartups (10) lets
        # through are reset. A few at a time keeps every one under it.
        self.master_ssh_slots = threading.BoundedSemaphore(MASTER_SSH_AT_ONCE)

    @property
    def state_dir(self) -> Path:
        return self.paths.state_dir

    def fleet(self) -> Fleet:
        """This thread's broker client, connected to the master's broker."""
        if not hasattr(self._local, "fleet"):
            if self.master is None or self.master.reachable_address is None:
                raise RuntimeError("the master's address is not known yet")
            self._local.fleet = self.fleet_factory(self.master.reachable_address)
            with self._fleets_lock:
                self._fleets.append(self._local.fleet)
        return self._local.fleet

    def close(self) -> None:
        """Close every thread's broker connection."""
        with self._fleets_lock:
            fleets, self._fleets = self._fleets, []
        for fleet in fleets:
            try:
                fleet.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort at the end of a run
                pass
