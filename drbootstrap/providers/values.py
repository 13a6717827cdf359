"""The values the provider interface passes (drbootstrap.providers.base): whom a provider works for,
what a run asks of a cloud, and what the cloud answers about a node's boot, addresses and teardown."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EnvironmentScope:
    """Which environment a provider works for, and where its operator key lives (0600).
    `environment`: the name the cloud knows it by (`<environment>.<site>` at a site other than the
    primary); `backups_of`: the environment's own name, which its backups are tagged with at every
    site (empty: the same as `environment`)."""

    environment: str
    state_dir: Path
    operator_key_path: Path
    backups_of: str = ""


@dataclass(frozen=True)
class BootProgress:
    """Has the node's boot (its user-data) finished? `failed`: it ended badly; `detail` says how."""

    finished: bool
    failed: bool = False
    detail: str = ""


@dataclass(frozen=True)
class NodeAddresses:
    """`private`: where the other nodes reach it; `public`: where this controller reaches it, if elsewhere."""

    private: str | None
    public: str | None = None

    @property
    def reachable(self) -> str | None:
        return self.public or self.private


@dataclass(frozen=True)
class VolumeWanted:
    """One of the spec's volumes for a node."""

    name: str
    mount: str
    size_gb: int
    snapshot: str | None = None
    type: str | None = None  # the cloud's volume type; None: its default
    iops: int | None = None
    throughput: int | None = None  # MiB/s
    encrypted: bool | None = None
    kms_key: str | None = None


@dataclass(frozen=True)
class ImageRef:
    """A spec's image: by id, the newest of `owner`'s images whose name matches `name`, or the id
    an SSM parameter holds."""

    id: str | None = None
    name: str | None = None
    owner: str | None = None
    ssm: str | None = None

    def __str__(self) -> str:
        if self.ssm:
            return f"SSM parameter {self.ssm}"
        return self.id or f"newest {self.name!r} of owner {self.owner}"


@dataclass(frozen=True)
class Preflight:
    """What a run will ask of the cloud, checked before anything is created: the subnets and
    zones its nodes are placed in (`where`: the spec key naming them) and its images to resolve."""

    subnets: Mapping[str, str] = field(default_factory=dict)  # subnet id -> where the spec names it
    zones: Mapping[str, str] = field(default_factory=dict)  # zone name -> where the spec names it
    images: Mapping[str, ImageRef] = field(default_factory=dict)  # logical name -> reference
    unplaced: tuple[str, ...] = ()  # spec keys of nodes given neither subnet nor zone
    create_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # where -> group extra
    group_network: tuple[str, ...] = ()  # spec keys of groups' `ports` and `elastic_address`


@dataclass
class Teardown:
    """What destroy_environment removed: hostnames, volumes and the other resource lines."""

    destroyed: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
