"""Provider-neutral node operations over any libcloud NodeDriver: what a node to launch is
(LaunchRequest: tags and client token), finding an environment's nodes by tags, launching exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from libcloud.compute.base import Node, NodeDriver, NodeImage, NodeLocation, NodeSize
from libcloud.compute.types import NodeState

from drbootstrap.errors import ProviderError
from drbootstrap.providers.pacing import Pacing
from drbootstrap.providers.settings import accepted_parameters
from drbootstrap.providers.throttle import ErrorKind

ENVIRONMENT_TAG = "drbootstrap:environment"
HOSTNAME_TAG = "drbootstrap:hostname"
ROLE_TAG = "drbootstrap:role"
GENERATION_TAG = "drbootstrap:generation"


def node_id(node: Node) -> str:
    """The node's id: libcloud's Node allows none, but every node a cloud lists or launches has one."""
    return cast(str, node.id)


@dataclass(frozen=True)
class ServicePort:
    """A port a group serves, opened to its nodes from `sources` (CIDRs)."""

    port: int
    protocol: str = "tcp"
    sources: tuple[str, ...] = ("0.0.0.0/0",)


class NoCapacityError(ProviderError):
    """The cloud has no capacity for the size asked (EC2's InsufficientInstanceCapacity): the next
    of the group's fallback sizes is tried."""


@dataclass(frozen=True)
class LaunchRequest:
    """One node to exist: its identity (environment, hostname, generation) and how to make it."""

    environment: str
    hostname: str
    role: str
    image_id: str
    size_id: str
    user_data: str = ""
    generation: int = 1
    zone: str | None = None
    subnet: str | None = None  # a subnet id (its zone is the subnet's): the provider's to honour
    root_size_gb: int | None = None  # None: the image's
    key_name: str | None = None
    security_groups: tuple[str, ...] = ()
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    create_options: Mapping[str, Any] = field(default_factory=dict)  # driver-specific kwargs
    fallback_sizes: tuple[str, ...] = ()  # size ids tried in turn when size_id has no capacity
    size_attempt: int = 0  # which of [size_id, *fallback_sizes] this is (0: the first)
    service_ports: tuple[ServicePort, ...] = ()  # opened to this node (its group's ports)

    @property
    def client_token(self) -> str:
        """Same environment, hostname and generation -> same token, so a retried launch is one node."""
        attempt = f"\0{self.size_attempt}" if self.size_attempt else ""  # another size: another request
        digest = hashlib.sha256(f"{self.environment}\0{self.hostname}\0{self.generation}{attempt}".encode())
        return f"drb-{digest.hexdigest()[:40]}"

    def tags(self) -> dict[str, str]:
        return {**self.extra_tags, ENVIRONMENT_TAG: self.environment, HOSTNAME_TAG: self.hostname,
                ROLE_TAG: self.role, GENERATION_TAG: str(self.generation)}


def node_tags(node: Node) -> dict[str, str]:
    """Tags as each driver reports them: EC2 and the local cloud `tags`, OpenStack `metadata`."""
    for key in ("tags", "metadata", "labels"):
        value = node.extra.get(key)
        if isinstance(value, Mapping) and value:
            return dict(value)
    return {}


def is_gone(node: Node) -> bool:
    return node.state == NodeState.TERMINATED or node.extra.get("status") in ("shutting-down", "terminated")


ListOptions = Callable[[Mapping[str, str]], Mapping[str, Any]]


def list_tagged_nodes(driver: NodeDriver, tags: Mapping[str, str], *, pacing: Pacing | None = None,
                      list_options: ListOptions | None = None) -> list[Node]:
    """Live nodes carrying every one of `tags`. `list_options(tags)`: list_nodes arguments that let
    the cloud filter first (the provider's to give); we filter again on our side regardless."""
    pacing = pacing or Pacing()
    options = dict(list_options(tags)) if list_options is not None else {}
    nodes = pacing.call(driver, "list nodes", lambda: driver.list_nodes(**options))
    return [n for n in nodes if not is_gone(n) and all(node_tags(n).get(k) == v for k, v in tags.items())]


def find_environment_nodes(driver: NodeDriver, environment: str, *, pacing: Pacing | None = None,
                           list_options: ListOptions | None = None) -> dict[str, Node]:
    """hostname -> live node, for every node tagged as belonging to `environment`."""
    found: dict[str, Node] = {}
    nodes = list_tagged_nodes(driver, {ENVIRONMENT_TAG: environment}, pacing=pacing, list_options=list_options)
    for node in sorted(nodes, key=node_id):
        hostname = node_tags(node).get(HOSTNAME_TAG)
        if hostname:
            found.setdefault(hostname, node)  # duplicates cannot come from us; keep the lowest id
    return found


def find_node(driver: NodeDriver, environment: str, hostname: str, *, pacing: Pacing | None = None,
              list_options: ListOptions | None = None) -> Node | None:
    nodes = list_tagged_nodes(driver, {ENVIRONMENT_TAG: environment, HOSTNAME_TAG: hostname}, pacing=pacing,
                              list_options=list_options)
    return min(nodes, key=node_id) if nodes else None


def resolve_location(driver: NodeDriver, zone: str, *, pacing: Pacing | None = None) -> NodeLocation:
    """The driver's location for an availability zone name (or a location id or name)."""
    pacing = pacing or Pacing()
    locations = pacing.call(driver, "list locations", driver.list_locations)
    for location in locations:
        availability_zone = getattr(location, "availability_zone", None)
        if zone in (getattr(availability_zone, "name", None), location.id, location.name):
            return location
    known = sorted(str(getattr(getattr(loc, "availability_zone", None), "name", None) or loc.name) for loc in locations)
    raise ProviderError(f"zone {zone!r} is not offered by this provider",
                        hint=f"pick one of: {', '.join(known) or 'none listed'}")


def create_node_kwargs(driver: NodeDriver, request: LaunchRequest, location: NodeLocation | None) -> dict[str, Any]:
    """create_node arguments for this driver: tags, user-data, client token where it has them."""
    accepted = accepted_parameters(driver.create_node)

    def takes(name: str) -> bool:
        return accepted is None or name in accepted

    if not takes("ex_metadata"):
        raise ProviderError(f"the {driver.name} driver cannot tag nodes (no ex_metadata on create_node)",
                            hint="drbootstrap finds its nodes by tags; use a provider whose driver tags")
    kwargs: dict[str, Any] = {
        "name": request.hostname,
        "image": NodeImage(id=request.image_id, name=request.image_id, driver=driver),
        "size": NodeSize(id=request.size_id, name=request.size_id, ram=0, disk=0, bandwidth=0, price=0,
                         driver=driver),
        "ex_metadata": request.tags(),
    }
    if location is not None:
        kwargs["location"] = location
    optional = {"ex_userdata": request.user_data or None, "ex_clienttoken": request.client_token,
                "ex_keyname": request.key_name, "ex_security_groups": list(request.security_groups) or None}
    kwargs.update({name: value for name, value in optional.items() if value is not None and takes(name)})
    kwargs.update(request.create_options)
    return kwargs


def launch_node(driver: NodeDriver, request: LaunchRequest, *, pacing: Pacing | None = None,
                look_first: bool = True, location: NodeLocation | None = None,
                list_options: ListOptions | None = None, no_capacity_codes: tuple[str, ...] = ()) -> Node:
    """Make sure the node exists, exactly once: found by tags, else created with its client token.

    A create that may have reached the cloud (a reset, a 500) is looked up by tags before it is
    repeated, so even a cloud without client tokens never gets a second node. An answer naming one
    of `no_capacity_codes` is NoCapacityError at once (the caller tries another size).
    """
    pacing = pacing or Pacing()

    def find() -> Node | None:
        return find_node(driver, request.environment, request.hostname, pacing=pacing, list_options=list_options)

    if look_first:
        existing = find()
        if existing is not None:
            return existing
    if location is None and request.zone:
        location = resolve_location(driver, request.zone, pacing=pacing)
    kwargs = create_node_kwargs(driver, request, location)

    def look_if_maybe_created(kind: ErrorKind) -> Node | None:
        if kind is ErrorKind.THROTTLED:
            return None  # refused before anything happened: nothing to find
        return find()

    def create() -> Any:
        try:
            return driver.create_node(**kwargs)
        except Exception as error:
            code = next((code for code in no_capacity_codes if code in str(error)), None)
            if code is None:
                raise
            raise NoCapacityError(f"launch {request.hostname}: {code} for size {request.size_id}",
                                  hint="try another size or zone, or later") from None

    node = pacing.call(driver, f"launch {request.hostname}", create, before_retry=look_if_maybe_created)
    node = node[0] if isinstance(node, list) else node
    if is_gone(node):
        # EC2 answers a reused client token with the instance it made then, even if terminated.
        raise ProviderError(f"launch {request.hostname}: the cloud returned {node.id}, already terminated, "
                            f"for client token of generation {request.generation}",
                            hint="launch it with the next generation number to get a new node")
    return node
