"""What a provider is built from: the spec's provider block as ProviderSettings, the `extra` keys
drbootstrap reads itself, the driver substitute (`extra: driver_class`) and the retry policy."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from drbootstrap.errors import ProviderError
from drbootstrap.providers.throttle import RetryPolicy

if TYPE_CHECKING:
    from libcloud.compute.base import NodeDriver

_Family = TypeVar("_Family")


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

    name: "local", an EC2 dialect ("ec2", "aws", "eucalyptus") or any libcloud Provider name;
    credentials: logical name -> secret reference; extra: driver kwargs, except the keys in
    DRBOOTSTRAP_EXTRA_KEYS, which drbootstrap reads itself (never the driver). rate and
    max_parallel None: the provider family's defaults (see Provider.default_rate).
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
    vpc: str | None = None  # the network nodes and the security group live in (EC2 family)
    tags: Mapping[str, str] = field(default_factory=dict)  # the spec's custom tags, on every resource
    uri: str | None = None  # a hypervisor's connection URI (the libvirt provider)

    @classmethod
    def from_block(cls, block: Any, tags: Mapping[str, str] | None = None) -> ProviderSettings:
        """From the spec's provider block (drbootstrap.spec.models.ProviderSpec), field for field:
        credentials keep their references (revealed only when a driver is built), rate -> RateSettings;
        `tags`: the spec's custom tags."""
        rate = getattr(block, "rate", None)
        return cls(name=block.name, region=block.region, zone=block.zone,
                   endpoint=str(block.endpoint) if block.endpoint else None,
                   credentials=dict(block.credentials), network=str(block.network) if block.network else None,
                   max_parallel=block.max_parallel,
                   rate=RateSettings(rate.per_second, rate.burst) if rate is not None else None,
                   images={k: v for k, v in block.images.items() if isinstance(v, str)}, sizes=dict(block.sizes),
                   extra=dict(block.extra), vpc=_vpc(getattr(block, "vpc", None)), tags=dict(tags or {}),
                   uri=getattr(block, "uri", None))

    def secret(self, *names: str) -> str | None:
        """The first of `names` present in credentials, revealed."""
        for name in names:
            if name in self.credentials:
                return self.credentials[name].reveal()
        return None


# `extra` keys that are drbootstrap's own settings, not driver keyword arguments:
#   driver_class: "module:Class", a NodeDriver subclass built instead of the provider's usual class
#       (same settings, same keyword arguments): a cloud whose dialect needs a patched driver, or a
#       test double such as tests.support.moto_ec2:MotoEC2NodeDriver. The seam for substituting drivers.
#   operator_cidr: where the operator's controller connects from (EC2 security group rules).
#   public_key: an OpenSSH public key to import as the environment's key pair instead of a new pair.
#   retry_max_attempts, retry_base_delay, retry_max_delay: the retry policy for cloud calls.
#   profile, credential_chain: EC2 family credentials through the AWS SDK's standard chain.
DRIVER_CLASS_KEY = "driver_class"
DRBOOTSTRAP_EXTRA_KEYS = frozenset({DRIVER_CLASS_KEY, "operator_cidr", "public_key", "retry_max_attempts",
                                    "retry_base_delay", "retry_max_delay", "profile", "credential_chain",
                                    "ssm_endpoint"})


def driver_class_override(settings: ProviderSettings, family: type[_Family]) -> type[_Family] | None:
    """The `extra: driver_class` substitute, checked to be a subclass of the provider's driver `family`."""
    reference = settings.extra.get(DRIVER_CLASS_KEY)
    if not reference:
        return None
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


def split_extra(driver_class: type[NodeDriver], extra: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec's `extra` serves two masters: keys that the driver's create_node names (ex_keyname,
    ex_security_groups, ...) go to every launch; the rest go to the driver's constructor."""
    create_parameters = accepted_parameters(driver_class.create_node) or set()
    extra = {k: v for k, v in extra.items() if k not in DRBOOTSTRAP_EXTRA_KEYS}
    constructor = {k: v for k, v in extra.items() if k not in create_parameters}
    create = {k: v for k, v in extra.items() if k in create_parameters}
    return constructor, create


def accepted_parameters(method: Callable[..., Any]) -> set[str] | None:
    """Keyword names a driver method takes; None when it takes any (**kwargs)."""
    parameters = inspect.signature(method).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def driver_keywords(driver_class: type[NodeDriver]) -> frozenset[str] | None:
    """Every keyword a driver really takes: its create_node's (per launch) and its constructor's,
    following **kwargs up the base classes until a constructor that takes no more (libcloud's
    NodeDriver drops what it does not name, silently). None when create_node takes anything."""
    create = accepted_parameters(driver_class.create_node)
    if create is None:
        return None
    names = set(create)
    for klass in driver_class.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in parameters):
            break
    return frozenset(names - {"self", "name", "size", "image", "location"})


def _vpc(value: Any) -> str | None:
    """The spec's VPC: its id, or a tag lookup's key (spec/placement.py TagLookupSpec)."""
    key = getattr(value, "key", None)
    return str(key) if key is not None else value
