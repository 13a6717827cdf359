"""Provider-neutral node operations over any libcloud NodeDriver: find an environment's nodes by
tags, launch idempotently (client token + tag lookup), launch many in parallel under a rate, tear down.

Every API call goes through `Pacing.call`: one token from the provider's bucket per attempt,
bounded jittered retries, errors without secrets. libcloud drivers are not thread-safe (one
connection object holds the last response), so parallel work takes a driver *factory* and gives
each worker thread its own driver.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol

from libcloud.compute.base import Node, NodeDriver, NodeImage, NodeLocation, NodeSize
from libcloud.compute.types import NodeState

from drbootstrap.errors import DrbError, PartialFailure, ProviderError
from drbootstrap.providers.throttle import (
    ErrorKind,
    RetryEvent,
    RetryPolicy,
    TokenBucket,
    call_with_retries,
)

ENVIRONMENT_TAG = "drbootstrap:environment"
HOSTNAME_TAG = "drbootstrap:hostname"
ROLE_TAG = "drbootstrap:role"
GENERATION_TAG = "drbootstrap:generation"


# ---- input: what the spec's provider block gives us ------------------------------------------


class SecretReference(Protocol):
    def reveal(self) -> str: ...


@dataclass(frozen=True)
class PlainSecret:
    """A secret already in hand (from the environment); never printed."""

    value: str

    def reveal(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return "PlainSecret(***)"


@dataclass(frozen=True)
class RateSettings:
    per_second: float
    burst: float


@dataclass
class ProviderSettings:
    """The spec's provider block, field for field (drbootstrap.spec feeds this; tests build it).

    name: libcloud provider ("ec2", "eucalyptus", "openstack", "gce", or any libcloud Provider
    name for the passthrough); credentials: logical name -> secret reference; extra: driver kwargs,
    except the keys in DRBOOTSTRAP_EXTRA_KEYS, which drbootstrap reads itself (never the driver).
    """

    name: str
    region: str | None = None
    zone: str | None = None
    endpoint: str | None = None
    credentials: Mapping[str, SecretReference] = field(default_factory=dict)
    network: str | None = None
    max_parallel: int | None = None
    rate: RateSettings | None = None
    images: Mapping[str, str] = field(default_factory=dict)
    sizes: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_block(cls, block: Any) -> ProviderSettings:
        """From the spec's provider block (drbootstrap.spec.models.ProviderSpec), field for field:
        credentials keep their references (revealed only when a driver is built), rate -> RateSettings."""
        rate = getattr(block, "rate", None)
        return cls(name=block.name, region=block.region, zone=block.zone,
                   endpoint=str(block.endpoint) if block.endpoint else None,
                   credentials=dict(block.credentials), network=str(block.network) if block.network else None,
                   max_parallel=block.max_parallel,
                   rate=RateSettings(rate.per_second, rate.burst) if rate is not None else None,
                   images=dict(block.images), sizes=dict(block.sizes), extra=dict(block.extra))

    def secret(self, *names: str) -> str | None:
        """The first of `names` present in credentials, revealed."""
        for name in names:
            if name in self.credentials:
                return self.credentials[name].reveal()
        return None


# EC2's documented RunInstances bucket (1000 tokens, 2 per second); others: a cautious default.
DEFAULT_RATES = {"ec2": RateSettings(per_second=2, burst=1000), "eucalyptus": RateSettings(5, 50)}
FALLBACK_RATE = RateSettings(per_second=5, burst=20)
DEFAULT_MAX_PARALLEL = 20

# `extra` keys that are drbootstrap's own settings, not driver keyword arguments:
#   driver_class: "module:Class", a NodeDriver subclass built instead of the provider's usual class
#       (same settings, same keyword arguments): a cloud whose dialect needs a patched driver, or a
#       test double such as tests.support.moto_ec2:MotoEC2NodeDriver. The seam for substituting drivers.
#   operator_cidr: where the operator's controller connects from (EC2 security group rules).
#   public_key: an OpenSSH public key to import as the environment's key pair instead of a new pair.
#   retry_max_attempts, retry_base_delay, retry_max_delay: the retry policy for cloud calls.
DRIVER_CLASS_KEY = "driver_class"
DRBOOTSTRAP_EXTRA_KEYS = frozenset({DRIVER_CLASS_KEY, "operator_cidr", "public_key", "retry_max_attempts",
                                    "retry_base_delay", "retry_max_delay"})


def driver_class_override(settings: ProviderSettings, family: type) -> type | None:
    """The `extra: driver_class` substitute, checked to be a subclass of the provider's driver `family`."""
    reference = settings.extra.get(DRIVER_CLASS_KEY)
    if not reference:
        return None
    import importlib

    module_name, _, class_name = str(reference).partition(":")
    try:
        driver_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ProviderError(f"provider {settings.name}: extra driver_class {reference!r} cannot be imported",
                            hint="write it as package.module:ClassName, importable by this Python") from None
    if not (isinstance(driver_class, type) and issubclass(driver_class, family)):
        raise ProviderError(f"provider {settings.name}: extra driver_class {reference!r} is not a "
                            f"{family.__name__}", hint=f"name a subclass of libcloud's {family.__name__}")
    return driver_class


def retry_policy_for(settings: ProviderSettings) -> RetryPolicy:
    """The default policy, with the spec's `extra` retry_* overrides."""
    defaults = RetryPolicy()
    extra = settings.extra
    return RetryPolicy(max_attempts=int(extra.get("retry_max_attempts", defaults.max_attempts)),
                       base_delay=float(extra.get("retry_base_delay", defaults.base_delay)),
                       max_delay=float(extra.get("retry_max_delay", defaults.max_delay)),
                       max_elapsed=defaults.max_elapsed)


def split_extra(driver_class: type, extra: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec's `extra` serves two masters: keys that the driver's create_node names (ex_keyname,
    ex_security_groups, ...) go to every launch; the rest go to the driver's constructor."""
    create_parameters = _accepted_parameters(driver_class.create_node) or set()
    extra = {k: v for k, v in extra.items() if k not in DRBOOTSTRAP_EXTRA_KEYS}
    constructor = {k: v for k, v in extra.items() if k not in create_parameters}
    create = {k: v for k, v in extra.items() if k in create_parameters}
    return constructor, create


def bucket_for(settings: ProviderSettings) -> TokenBucket:
    rate = settings.rate or DEFAULT_RATES.get(settings.name.lower(), FALLBACK_RATE)
    return TokenBucket(per_second=rate.per_second, burst=rate.burst)


def build_driver(settings: ProviderSettings) -> NodeDriver:
    """A NodeDriver for the provider block; unknown names go to libcloud's own registry."""
    name = settings.name.lower()
    if name in ("ec2", "aws"):
        from libcloud.compute.drivers.ec2 import EC2NodeDriver

        from drbootstrap.providers.ec2 import build_ec2_driver

        return build_ec2_driver(settings, driver_class=driver_class_override(settings, EC2NodeDriver) or EC2NodeDriver)
    if name == "eucalyptus":
        from libcloud.compute.drivers.ec2 import EucNodeDriver

        from drbootstrap.providers.ec2 import build_eucalyptus_driver

        return build_eucalyptus_driver(settings, driver_class=driver_class_override(settings, EucNodeDriver)
                                       or EucNodeDriver)
    if name == "openstack":
        from drbootstrap.providers.openstack import build_openstack_driver

        return build_openstack_driver(settings)
    if name == "gce":
        from drbootstrap.providers.gce import build_gce_driver

        return build_gce_driver(settings)
    return build_passthrough_driver(settings)


def build_passthrough_driver(settings: ProviderSettings) -> NodeDriver:
    """Any other libcloud provider: credentials `key` and `secret`, region and extra as kwargs."""
    from libcloud.compute.providers import get_driver

    try:
        driver_class = get_driver(settings.name.lower())
    except AttributeError:
        raise ProviderError(f"provider {settings.name!r}: libcloud has no compute driver of that name",
                            hint="use ec2, eucalyptus, openstack, gce or a libcloud Provider name") from None
    kwargs, _ = split_extra(driver_class, settings.extra)
    if settings.region:
        kwargs.setdefault("region", settings.region)
    try:
        secret = settings.secret("secret")
        args = (settings.secret("key"),) + ((secret,) if secret is not None else ())
        return driver_class(*args, **kwargs)
    except TypeError as error:
        raise ProviderError(f"provider {settings.name!r}: driver rejected the settings ({error})",
                            hint="check the provider's extra: keys against libcloud's driver") from None


# ---- pacing ----------------------------------------------------------------------------------


@dataclass
class Pacing:
    """The provider's bucket, the retry policy and the progress hook, shared by every call.

    `on_retry` is called from launch_many's worker threads: the renderer must be thread-safe.
    """

    bucket: TokenBucket | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    on_retry: Callable[[RetryEvent], None] | None = None

    def call(self, driver: NodeDriver, operation: str, fn: Callable[[], Any],
             before_retry: Callable[[ErrorKind], Any] | None = None, transient_codes: Iterable[str] = ()) -> Any:
        return call_with_retries(fn, policy=self.policy, bucket=self.bucket, on_retry=self.on_retry,
                                 operation=operation, secrets=driver_secrets(driver),
                                 before_retry=before_retry, transient_codes=transient_codes)


def driver_secrets(driver: NodeDriver) -> tuple[str, ...]:
    """Everything a driver was given that must never appear in a message."""
    values = (getattr(driver, "key", None), getattr(driver, "secret", None), getattr(driver, "token", None))
    return tuple(v for v in values if isinstance(v, str))


# ---- what we launch --------------------------------------------------------------------------


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
    key_name: str | None = None
    security_groups: tuple[str, ...] = ()
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    create_options: Mapping[str, Any] = field(default_factory=dict)  # driver-specific kwargs

    @property
    def client_token(self) -> str:
        """Same environment, hostname and generation -> same token, so a retried launch is one node."""
        digest = hashlib.sha256(f"{self.environment}\0{self.hostname}\0{self.generation}".encode())
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


def _tag_filter_kwargs(driver: NodeDriver, tags: Mapping[str, str]) -> dict[str, Any]:
    """Ask the cloud to filter when it can (EC2 family); we filter again on our side regardless."""
    from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver

    if isinstance(driver, BaseEC2NodeDriver):
        return {"ex_filters": {f"tag:{key}": value for key, value in tags.items()}}
    return {}


def list_tagged_nodes(driver: NodeDriver, tags: Mapping[str, str], *, pacing: Pacing | None = None) -> list[Node]:
    """Live nodes carrying every one of `tags`."""
    pacing = pacing or Pacing()
    kwargs = _tag_filter_kwargs(driver, tags)
    nodes = pacing.call(driver, "list nodes", lambda: driver.list_nodes(**kwargs))
    return [n for n in nodes if not is_gone(n) and all(node_tags(n).get(k) == v for k, v in tags.items())]


def find_environment_nodes(driver: NodeDriver, environment: str, *, pacing: Pacing | None = None) -> dict[str, Node]:
    """hostname -> live node, for every node tagged as belonging to `environment`."""
    found: dict[str, Node] = {}
    for node in sorted(list_tagged_nodes(driver, {ENVIRONMENT_TAG: environment}, pacing=pacing), key=lambda n: n.id):
        hostname = node_tags(node).get(HOSTNAME_TAG)
        if hostname:
            found.setdefault(hostname, node)  # duplicates cannot come from us; keep the lowest id
    return found


def find_node(driver: NodeDriver, environment: str, hostname: str, *, pacing: Pacing | None = None) -> Node | None:
    nodes = list_tagged_nodes(driver, {ENVIRONMENT_TAG: environment, HOSTNAME_TAG: hostname}, pacing=pacing)
    return min(nodes, key=lambda n: n.id) if nodes else None


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


def _accepted_parameters(method: Callable[..., Any]) -> set[str] | None:
    """Keyword names a driver method takes; None when it takes any (**kwargs)."""
    parameters = inspect.signature(method).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def create_node_kwargs(driver: NodeDriver, request: LaunchRequest, location: NodeLocation | None) -> dict[str, Any]:
    """create_node arguments for this driver: tags, user-data, client token where it has them."""
    accepted = _accepted_parameters(driver.create_node)

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
                look_first: bool = True, location: NodeLocation | None = None) -> Node:
    """Make sure the node exists, exactly once: found by tags, else created with its client token.

    A create that may have reached the cloud (a reset, a 500) is looked up by tags before it is
    repeated, so even a cloud without client tokens never gets a second node.
    """
    pacing = pacing or Pacing()
    if look_first:
        existing = find_node(driver, request.environment, request.hostname, pacing=pacing)
        if existing is not None:
            return existing
    if location is None and request.zone:
        location = resolve_location(driver, request.zone, pacing=pacing)
    kwargs = create_node_kwargs(driver, request, location)

    def look_if_maybe_created(kind: ErrorKind) -> Node | None:
        if kind is ErrorKind.THROTTLED:
            return None  # refused before anything happened: nothing to find
        return find_node(driver, request.environment, request.hostname, pacing=pacing)

    node = pacing.call(driver, f"launch {request.hostname}", lambda: driver.create_node(**kwargs),
                       before_retry=look_if_maybe_created)
    node = node[0] if isinstance(node, list) else node
    if is_gone(node):
        # EC2 answers a reused client token with the instance it made then, even if terminated.
        raise ProviderError(f"launch {request.hostname}: the cloud returned {node.id}, already terminated, "
                            f"for client token of generation {request.generation}",
                            hint="launch it with the next generation number to get a new node")
    return node


@dataclass
class LaunchOutcome:
    """hostname -> node for everything that exists now; hostname -> one-line reason for the rest."""

    nodes: dict[str, Node] = field(default_factory=dict)
    already_there: set[str] = field(default_factory=set)
    failures: dict[str, str] = field(default_factory=dict)

    def raise_for_failures(self) -> None:
        if self.failures:
            lines = "; ".join(f"{host}: {why}" for host, why in sorted(self.failures.items()))
            raise PartialFailure(f"{len(self.failures)} of {len(self.failures) + len(self.nodes)} nodes "
                                 f"not launched: {lines}", hint="run again: launched nodes are kept and found")


def launch_many(
    driver_factory: Callable[[], NodeDriver],
    requests: Iterable[LaunchRequest],
    *,
    max_parallel: int = DEFAULT_MAX_PARALLEL,
    pacing: Pacing | None = None,
    on_launched: Callable[[LaunchRequest, Node], None] | None = None,
) -> LaunchOutcome:
    """Launch what is missing, `max_parallel` at a time, every call paced by the shared bucket.

    One tag lookup per environment up front finds what an earlier run made; each thread gets its
    own driver from `driver_factory`. Failures are collected, not raised: see LaunchOutcome.
    """
    pacing = pacing or Pacing()
    requests = list(requests)
    _check_unique(requests)
    main_driver = driver_factory()
    outcome = LaunchOutcome()
    existing: dict[str, dict[str, Node]] = {}
    for environment in sorted({r.environment for r in requests}):
        existing[environment] = find_environment_nodes(main_driver, environment, pacing=pacing)
    locations = {zone: resolve_location(main_driver, zone, pacing=pacing)
                 for zone in sorted({r.zone for r in requests if r.zone})}
    missing = []
    for request in requests:
        node = existing[request.environment].get(request.hostname)
        if node is None:
            missing.append(request)
        else:
            outcome.nodes[request.hostname] = node
            outcome.already_there.add(request.hostname)
    local = threading.local()

    def launch_one(request: LaunchRequest) -> Node:
        if not hasattr(local, "driver"):
            local.driver = driver_factory()
        return launch_node(local.driver, request, pacing=pacing, look_first=False,
                           location=locations.get(request.zone) if request.zone else None)

    with ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="drb-launch") as pool:
        futures = {pool.submit(launch_one, request): request for request in missing}
        for future in as_completed(futures):
            request = futures[future]
            try:
                node = future.result()
            except DrbError as error:
                outcome.failures[request.hostname] = str(error)
                continue
            outcome.nodes[request.hostname] = node
            if on_launched is not None:
                on_launched(request, node)
    return outcome


def _check_unique(requests: list[LaunchRequest]) -> None:
    seen: set[tuple[str, str]] = set()
    for request in requests:
        key = (request.environment, request.hostname)
        if key in seen:
            raise ProviderError(f"hostname {request.hostname!r} requested twice in environment "
                                f"{request.environment!r}", hint="node names must be unique per environment")
        seen.add(key)


def destroy_environment(driver: NodeDriver, environment: str, *, pacing: Pacing | None = None) -> list[str]:
    """Terminate every live node tagged with `environment`; return the hostnames destroyed."""
    pacing = pacing or Pacing()
    destroyed = []
    for node in sorted(list_tagged_nodes(driver, {ENVIRONMENT_TAG: environment}, pacing=pacing), key=lambda n: n.id):
        hostname = node_tags(node).get(HOSTNAME_TAG, node.id)
        pacing.call(driver, f"destroy {hostname}", lambda node=node: driver.destroy_node(node))
        destroyed.append(hostname)
    return sorted(destroyed)
