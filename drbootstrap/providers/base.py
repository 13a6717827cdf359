"""The provider interface: everything the executor asks of a cloud, one implementation per family
(local, the EC2 family, generic libcloud), so the executor never asks which cloud it is on.

A Provider is one site: its settings, its environment, its pacing and its drivers. A second site
is a second instance; nothing here is module-level state.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from libcloud.compute.base import Node, NodeDriver, NodeLocation

from drbootstrap.backups.catalog import BackupRecord
from drbootstrap.providers.nodes import (
    ENVIRONMENT_TAG,
    HOSTNAME_TAG,
    LaunchRequest,
    NoCapacityError,
    find_environment_nodes,
    find_node,
    launch_node,
    list_tagged_nodes,
    node_tags,
    resolve_location,
)
from drbootstrap.providers.pacing import Pacing
from drbootstrap.providers.settings import (
    DRBOOTSTRAP_EXTRA_KEYS,
    ProviderSettings,
    RateSettings,
    accepted_parameters,
    driver_keywords,
    retry_policy_for,
)
from drbootstrap.providers.throttle import RetryEvent, TokenBucket
from drbootstrap.providers.values import (
    BootProgress,
    EnvironmentScope,
    NodeAddresses,
    Preflight,
    Teardown,
    VolumeWanted,
)


class Provider(ABC):
    """One cloud site as the executor sees it. Subclasses build the driver and override what differs."""

    default_rate: ClassVar[RateSettings] = RateSettings(per_second=5, burst=10)
    default_max_parallel: ClassVar[int] = 8
    # True when a node's files are this host's (the embedded cloud): the executor reaches into
    # it directly; otherwise only over SSH.
    nodes_share_this_host: ClassVar[bool] = False
    # The broker link is stomp+ssl unless the spec says otherwise: nodes talk across a network
    # others share. The local cloud's private bridge on this machine keeps plain STOMP by default.
    broker_tls_by_default: ClassVar[bool] = True

    # Errors meaning "no capacity for this size": the group's next fallback size is tried.
    no_capacity_codes: ClassVar[tuple[str, ...]] = ()
    # `extra:` keys this provider reads itself (besides drbootstrap's and its driver's keywords).
    own_extra_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def driver_family(cls, name: str) -> type[NodeDriver] | None:
        """The libcloud driver class provider `name` builds (None: not known before it runs)."""
        from libcloud.compute.providers import get_driver

        try:
            return get_driver(name.lower())
        except (AttributeError, ValueError):
            return None

    @classmethod
    def accepted_extra_keys(cls, name: str) -> frozenset[str] | None:
        """Every `extra:` key this provider uses: drbootstrap's own, the provider's, its driver's
        keywords. None when that cannot be told (a driver that takes any keyword)."""
        family = cls.driver_family(name)
        keywords = driver_keywords(family) if family is not None else None
        if keywords is None:
            return None
        return DRBOOTSTRAP_EXTRA_KEYS | cls.own_extra_keys | keywords

    def __init__(self, settings: ProviderSettings, scope: EnvironmentScope, *,
                 on_retry: Callable[[RetryEvent], None] | None = None,
                 driver_factory: Callable[[], NodeDriver] | None = None) -> None:
        self.settings, self.scope = settings, scope
        rate = settings.rate or self.default_rate
        self.pacing = Pacing(bucket=TokenBucket(per_second=rate.per_second, burst=rate.burst),
                             policy=retry_policy_for(settings), on_retry=on_retry)
        self._driver_factory = driver_factory or self.new_driver
        self._local = threading.local()
        self._lock = threading.Lock()
        self._locations: dict[str, NodeLocation] = {}
        # hostname -> node this environment had when the first launch of this provider looked (one
        # listing, not one per node): what an earlier, interrupted run made is found there.
        self._found_at_start: dict[str, Node] | None = None

    # ---- drivers and limits -----------------------------------------------------------------

    @abstractmethod
    def new_driver(self) -> NodeDriver:
        """A fresh libcloud driver for this site (drivers are not thread-safe)."""

    def driver(self) -> NodeDriver:
        """This thread's driver."""
        if not hasattr(self._local, "driver"):
            self._local.driver = self._driver_factory()
        return self._local.driver

    @property
    def environment(self) -> str:
        return self.scope.environment

    @property
    def backups_environment(self) -> str:
        """The environment whose backups this provider takes, tags and deletes. The rule: a site's
        provider owns the environment's backups, whichever site it is (they are tagged with the
        environment's own name, so every site's `up` can restore them and any site can prune them)."""
        return self.scope.backups_of or self.scope.environment

    @property
    def max_parallel(self) -> int:
        """Launches in flight at once: the spec's, else the family's default."""
        return self.settings.max_parallel or self.default_max_parallel

    def call(self, operation: str, fn: Callable[[], Any], **kwargs: Any) -> Any:
        """One paced request on this thread's driver."""
        return self.pacing.call(self.driver(), operation, fn, **kwargs)

    # ---- the environment's shared resources -------------------------------------------------

    def operator_public_key(self) -> str:
        """The operator's SSH public key (OpenSSH line), its private key made 0600 here when missing."""
        from drbootstrap.providers.operator_key import load_or_create_operator_key

        return load_or_create_operator_key(self.scope.operator_key_path)

    def prepare_environment(self) -> str:
        """Before the master launches: what every node of the environment shares. A one-line detail."""
        return ""

    def drill_isolation(self, seed: str) -> dict[str, str]:
        """Changes to the spec's provider block that keep a drill (another environment name, `seed`
        its id) apart from this environment. On a cloud the environment's name already separates
        everything `up` makes (tags, key pair, security group, volume names): nothing to change."""
        return {}

    # ---- nodes ------------------------------------------------------------------------------

    def list_options(self, tags: Mapping[str, str]) -> dict[str, Any]:
        """list_nodes arguments that let the cloud filter by `tags` (none by default)."""
        return {}

    def preflight(self, wanted: Preflight) -> dict[str, str]:
        """Before anything is created: check what the run will ask for, and resolve its images
        (logical name -> image id). By default images are taken by id, and looking one up by name,
        placing nodes in subnets, giving a group create_node options, ports or elastic addresses is
        refused."""
        from drbootstrap.errors import SpecError
        from drbootstrap.spec.placement import described

        problems = [f"{where}: subnet {described(subnet)}: the {self.settings.name} provider places nodes in "
                    "zones only"
                    for subnet, where in wanted.subnets.items()]
        problems += [f"provider.images.{logical}: the {self.settings.name} provider takes images by id only"
                     for logical, ref in wanted.images.items() if ref.id is None]
        problems += [f"{where}: the {self.settings.name} provider does not open group ports or give groups "
                     "addresses (the EC2 family does)" for where in wanted.group_network]
        if problems:
            raise SpecError(problems)
        for zone in wanted.zones:
            self._location(zone)
        return {logical: str(ref.id) for logical, ref in wanted.images.items()}

    def launch_settings(self, request: LaunchRequest) -> dict[str, Any]:
        """LaunchRequest fields this provider sets (key pair, groups, create_node options)."""
        return {}

    def launch(self, request: LaunchRequest) -> Node:
        """The node, exactly once: found by tags (in one listing of the environment per provider,
        taken at its first launch), else created with its client token; a create that may have
        reached the cloud is looked up by its own tags before it is repeated. A size without
        capacity gives way to the request's next fallback size."""
        existing = self._existing_at_start().get(request.hostname)
        if existing is not None:
            return existing
        request = dataclasses.replace(request, **self.launch_settings(request))
        location = self._location(request.zone) if request.zone else None
        sizes = [request.size_id, *request.fallback_sizes]
        for attempt, size in enumerate(sizes):
            last = attempt == len(sizes) - 1
            try:
                return launch_node(self.driver(), dataclasses.replace(request, size_id=size, size_attempt=attempt),
                                   pacing=self.pacing, location=location, look_first=attempt > 0,
                                   list_options=self.list_options,
                                   no_capacity_codes=() if last else self.no_capacity_codes)
            except NoCapacityError:
                if last:
                    raise
        raise AssertionError("unreachable: the last size's failure is raised")

    def _existing_at_start(self) -> dict[str, Node]:
        with self._lock:
            if self._found_at_start is None:
                self._found_at_start = self.nodes()
            return self._found_at_start

    def find(self, hostname: str) -> Node | None:
        return find_node(self.driver(), self.environment, hostname, pacing=self.pacing,
                         list_options=self.list_options)

    def get_node(self, node_id: str) -> Node | None:
        """A node by its id (asking the cloud for that id alone where the driver can)."""
        driver = self.driver()
        accepted = accepted_parameters(driver.list_nodes)
        if accepted is None or "ex_node_ids" in accepted:
            nodes = self.call(f"find node {node_id}", lambda: driver.list_nodes(ex_node_ids=[node_id]))
        else:
            nodes = self.call(f"find node {node_id}", driver.list_nodes)
        return next((n for n in nodes if n.id == node_id), None)

    def nodes(self) -> dict[str, Node]:
        """hostname -> live node, for everything tagged as this environment's (orphans too)."""
        return find_environment_nodes(self.driver(), self.environment, pacing=self.pacing,
                                      list_options=self.list_options)

    def destroy_node(self, node: Node) -> None:
        driver = self.driver()
        self.pacing.call(driver, f"destroy {node.name}", lambda: driver.destroy_node(node))
        with self._lock:
            if self._found_at_start is not None:
                self._found_at_start = {h: n for h, n in self._found_at_start.items() if n.id != node.id}

    def stop_node(self, node: Node) -> None:
        """Stop a node without destroying it (fencing a site): libcloud's stop_node."""
        driver = self.driver()
        self.pacing.call(driver, f"stop {node.name}", lambda: driver.stop_node(node))

    def needs_replacing(self, node: Node) -> bool:
        """A node that exists but will never boot (its launch was cut short): replace, do not wait."""
        return False

    def addresses(self, node: Node) -> NodeAddresses:
        private = list(node.private_ips or []) + list(node.public_ips or [])
        return NodeAddresses(private=private[0] if private else None)

    def move_elastic_address(self, hostname: str, to: Node) -> str | None:
        """Move the elastic address that belongs to HOSTNAME (a dead active node) to the standby TO
        and return it; None when HOSTNAME holds none on this cloud (the master's DNS moves its name)."""
        return None

    def boot_finished(self, node: Node) -> BootProgress:
        """Has the node's user-data finished? By default: the cloud-init end marker in its console."""
        from libcloud.compute.types import NodeState

        if node.state == NodeState.ERROR:
            return BootProgress(True, failed=True, detail=str(node.extra.get("error") or "the cloud reports ERROR"))
        if node.state != NodeState.RUNNING:
            return BootProgress(False, detail=f"{node.state}")
        console = self.console_text(node)
        return BootProgress(boot_finished_in_console(console), detail="running")

    def console_text(self, node: Node) -> str:
        """The node's console output, where its boot prints its SSH host keys and its end."""
        driver = self.driver()
        get_console_output = getattr(driver, "ex_get_console_output", None)
        if callable(get_console_output):
            console = self.pacing.call(driver, f"console output of {node.name}", lambda: get_console_output(node))
            return console.get("output", "") if isinstance(console, dict) else str(console or "")
        from drbootstrap.errors import ProviderError

        raise ProviderError(f"the {driver.name} driver gives no console output for {node.name}",
                            hint="use a provider whose driver has ex_get_console_output")

    # ---- what belongs to a node beyond the instance ------------------------------------------

    def provision(self, node: Node, hostname: str, *, is_master: bool, volumes: Sequence[VolumeWanted],
                  elastic_address: bool = False) -> list[str]:
        """Right after launch: what the node needs from the cloud at once (`elastic_address`: its
        own public address, as its group asks). Detail fragments."""
        return []

    def size_of(self, node: Node) -> str | None:
        """The size (instance type) the node was launched as, where the cloud says (None: unknown)."""
        return None

    def attach_volumes(self, node: Node, hostname: str, volumes: Sequence[VolumeWanted],
                       node_path: Callable[[str], str]) -> list[str]:
        """The volumes step: each volume made (from its snapshot) once, attached. Detail fragments."""
        from drbootstrap.providers.volumes import attach_named_volumes

        return attach_named_volumes(self, node, hostname, volumes, node_path)

    # ---- backups: snapshots tagged per drbootstrap/backups/catalog.py ----------------------------

    def snapshot_volume(self, hostname: str, volume: str, tags: Mapping[str, str]) -> str:
        """Snapshot the environment's volume `volume` of `hostname` (as `up` made it), tagged with
        `tags` at creation; the snapshot id."""
        raise self._no_backups("snapshot volumes")

    def list_backups(self, environment: str) -> list[BackupRecord]:
        """Every snapshot tagged as `environment`'s, as records (from the tags only)."""
        raise self._no_backups("list backups")

    def tag_backup(self, snapshot_id: str, tags: Mapping[str, str]) -> None:
        """Add or replace tags on one of the environment's snapshots (verification results)."""
        raise self._no_backups("tag backups")

    def delete_backup(self, snapshot_id: str) -> None:
        """Delete one snapshot; refuses one not tagged as a backup of `backups_environment`."""
        raise self._no_backups("delete backups")

    def copy_backup(self, snapshot_id: str, to_region: str) -> str:
        """Copy one of the environment's snapshots to `to_region` with its tags (for failover); the
        copy's id there. Copying again finds the copy already made."""
        raise self._no_backups("copy backups to another region")

    def _no_backups(self, what: str) -> Exception:
        from drbootstrap.errors import ProviderError

        return ProviderError(f"the {self.driver().name} driver cannot {what}",
                             hint="backups need a provider whose driver has volume snapshots with tags")

    def discard_volume(self, node: Node, hostname: str, volume: str) -> bool:
        """Detach and destroy the node's volume `volume` (a restore that failed verification makes
        way for an older backup); False when it has none."""
        from drbootstrap.providers.volumes import discard_named_volume

        return discard_named_volume(self, hostname, volume)

    def controller_address_for_nodes(self) -> str | None:
        """An address of this controller that the environment's nodes reach (to fetch a dump it
        serves); None where they cannot (a remote cloud)."""
        return None

    # ---- status and teardown ----------------------------------------------------------------

    def describe_resources(self) -> list[str]:
        """One line per shared resource the cloud holds for the environment (beyond its nodes)."""
        return []

    def destroy_environment(self, owned_ids: frozenset[str] = frozenset()) -> Teardown:
        """Remove everything the environment owns (tagged, or named in `owned_ids`); idempotent."""
        from drbootstrap.providers.volumes import destroy_named_volumes

        driver = self.driver()
        result = Teardown()
        for node in self.pacing.call(driver, "list nodes", driver.list_nodes):
            tags = node_tags(node)
            if tags.get(ENVIRONMENT_TAG) == self.environment or node.id in owned_ids:
                self.pacing.call(driver, f"destroy {node.name}", functools.partial(driver.destroy_node, node))
                result.destroyed.append(tags.get(HOSTNAME_TAG, node.name))
        result.volumes = destroy_named_volumes(self)
        result.destroyed.sort()
        return result

    def _location(self, zone: str) -> NodeLocation:
        """The zone's NodeLocation, looked up once per provider rather than once per launch."""
        with self._lock:
            if zone not in self._locations:
                self._locations[zone] = resolve_location(self.driver(), zone, pacing=self.pacing)
            return self._locations[zone]

    def _tagged(self, tags: dict[str, str]) -> list[Node]:
        return list_tagged_nodes(self.driver(), tags, pacing=self.pacing, list_options=self.list_options)


# cloud-init prints this on the console when every boot stage, user-data included, has run.
CLOUD_INIT_FINISHED = "finished at"


def boot_finished_in_console(console: str) -> bool:
    """cloud-init's final line, at the start of a line or after the prefix a console adds when it
    comes through the journal ("[  320.58] cloud-init[370]: Cloud-init v. ... finished at")."""
    return any(line.split("]: ", 1)[-1].startswith("Cloud-init v.") and CLOUD_INIT_FINISHED in line
               for line in console.splitlines())
