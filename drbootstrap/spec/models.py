"""The environment spec as pydantic models: the one description of what an environment is.

Every key is documented in examples/README.md; models are frozen and reject unknown keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, model_validator

from drbootstrap.spec.limits import MAX_STANDBY
from drbootstrap.spec.model_base import SpecModel
from drbootstrap.spec.operations import (
    BucketSpec,
    DrillSpec,
    FailoverSpec,
    PublicDnsSpec,
    StateSpec,
    WatchSpec,
)
from drbootstrap.spec.placement import IdOrLookup, ImageParameterSpec, ImageValue, PlacementSpec
from drbootstrap.spec.secrets import SecretRef
from drbootstrap.spec.types import (
    AbsolutePath,
    Cidr,
    Command,
    DnsName,
    EnvironmentName,
    Host,
    HostnamePattern,
    HypervisorUri,
    IpAddress,
    Label,
    PuppetClass,
    PuppetEnvironment,
    PuppetTag,
    Role,
    ScalarValue,
    Secret,
    SiteName,
    TagKey,
    TagValue,
    Token,
    Url,
    VolumeName,
    invalid,
)

LOCAL_PROVIDER = "local"
Tags = dict[TagKey, TagValue]
DEFAULT_NETWORK = "10.213.0.0/24"
Port = int


class RateSpec(SpecModel):
    per_second: float = Field(5.0, gt=0, le=10_000)
    burst: int = Field(10, ge=1, le=100_000)


class ProviderSpec(SpecModel):
    """Where nodes are launched: `local` (the embedded cloud) or a libcloud compute provider."""

    name: Token
    region: Token | None = None
    zone: Token | None = None
    endpoint: Url | None = None
    uri: HypervisorUri | None = None  # the hypervisor's connection URI (libvirt: qemu:///system)
    credentials: dict[Token, Secret] = Field(default_factory=dict)
    network: Cidr = DEFAULT_NETWORK
    max_parallel: int | None = Field(None, ge=1, le=1000)  # None: the provider family's default
    rate: RateSpec | None = None  # None: the provider family's default
    images: dict[Token, ImageValue] = Field(default_factory=dict)
    sizes: dict[Token, Token] = Field(default_factory=dict)
    vpc: IdOrLookup | None = None  # the network its nodes and security group live in (default: the cloud's)
    placement: PlacementSpec | None = None  # default placement of the master and of every group
    extra: dict[Token, ScalarValue] = Field(default_factory=dict)  # driver keyword arguments

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL_PROVIDER

    def image_id(self, logical: str) -> str:
        """The provider's image id for a logical image name (identity on the local cloud); for an
        image found by name, the lookup as `name@owner` (the provider resolves it)."""
        image = self.images.get(logical, logical)
        if isinstance(image, str):
            return image
        return f"ssm:{image.ssm}" if isinstance(image, ImageParameterSpec) else f"{image.name}@{image.owner}"

    def size_id(self, logical: str) -> str:
        """The provider's size id for a logical size name (identity on the local cloud)."""
        return self.sizes.get(logical, logical)


class TlsSpec(SpecModel):
    enabled: bool | None = None  # unset: the provider's default (on, except on the local cloud)
    ca_file: AbsolutePath | None = None
    cert_file: AbsolutePath | None = None
    key_file: AbsolutePath | None = None
    verify: bool = True


class SecuritySpec(SpecModel):
    """How broker messages are protected. `signing` unset: per-node ed25519 keys for a new
    environment, the shared HMAC key for one that already signs with it (or names a `psk`)."""

    psk: Secret | None = None
    signing: Literal["hmac-sha256", "ed25519"] | None = None
    # At most what an agent accepts (messaging.security.DEFAULT_MAX_TTL): a longer one would be refused.
    ttl_seconds: int = Field(60, ge=1, le=900)
    tls: TlsSpec = Field(default_factory=TlsSpec)


class BrokerSpec(SpecModel):
    """The master's STOMP broker. `replicas`: how many broker nodes carry the messages (a RabbitMQ
    cluster joined to the master's node, the others named by spec.broker_nodes), 1: the master's alone."""

    kind: Literal["activemq", "rabbitmq"] = "activemq"
    port: Port = Field(61613, ge=1, le=65535)
    tls: bool | None = None  # stomp+ssl under the environment's CA; unset: security.tls.enabled
    replicas: int = Field(1, ge=1, le=9)

    @model_validator(mode="after")
    def _replicas_are_a_rabbitmq_cluster(self) -> BrokerSpec:
        if self.replicas == 1:
            return self
        if self.kind != "rabbitmq":
            # A network of ActiveMQ brokers forwards on demand: a request queued on a broker that
            # dies is lost with it, and directed queues with selectors strand messages between
            # brokers; a RabbitMQ cluster mirrors every queue and fails over as one broker.
            raise invalid(f"replicas: {self.replicas} needs kind: rabbitmq (a RabbitMQ cluster); "
                          "an ActiveMQ network of brokers is not supported",
                          "set kind: rabbitmq, or replicas: 1", at="replicas")
        if self.tls:
            raise invalid(f"replicas: {self.replicas} with tls: the broker nodes have no certificates yet",
                          "set tls: false for plain STOMP, or replicas: 1", at="replicas")
        return self


class MasterPuppetSpec(SpecModel):
    mode: Literal["server", "apply"] = "server"
    autosign: Literal["token", "manual"] = "token"


class DynamicDnsSpec(SpecModel):
    """Register the master's name with an RFC 2136 server, signed with TSIG."""

    server: Host
    port: Port = Field(53, ge=1, le=65535)
    zone: DnsName
    name: Label | None = None  # defaults to the master's hostname
    tsig_key_name: DnsName
    tsig_algorithm: Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha1", "hmac-md5"] = (
        "hmac-sha256"
    )
    tsig_secret: Secret


class MasterRestoreSpec(SpecModel):
    """What a rebuilt master takes back from the newest `master-state` backup in the bucket, before
    its Puppet server starts: `ca` its Puppet CA (and its own certificate), so every agent's
    certificate stays valid; `code` the environments it served (then recipes/ is not pushed)."""

    ca: bool = False
    code: bool = False

    @property
    def parts(self) -> list[str]:
        return [part for part, wanted in (("ca", self.ca), ("code", self.code)) if wanted]


class MasterSpec(SpecModel):
    hostname: Label = "controller"
    image: Token = "master"
    size: Token = "small"
    broker: BrokerSpec = Field(default_factory=BrokerSpec)
    puppet: MasterPuppetSpec = Field(default_factory=MasterPuppetSpec)
    dynamic_dns: DynamicDnsSpec | None = None
    upstream_dns: list[IpAddress] = Field(default_factory=list)
    restore: MasterRestoreSpec = Field(default_factory=MasterRestoreSpec)
    placement: PlacementSpec | None = None  # default: provider.placement's first choice
    root_size_gb: int | None = Field(None, ge=1, le=16_384)  # default: the image's
    tags: Tags = Field(default_factory=dict)


class NodePuppetSpec(SpecModel):
    classes: list[PuppetClass] = Field(default_factory=list)
    environment: PuppetEnvironment = "production"
    tags: list[PuppetTag] = Field(default_factory=list)


class VolumeBackupSpec(SpecModel):
    """`backup:` on a volume: `drbootstrap backup` snapshots it, `up` restores and verifies it."""

    pre_snapshot: Command | None = None  # run on the node before the snapshot (flush, lock, fsfreeze)
    post_snapshot: Command | None = None  # run on the node after it, whatever happened
    hook_timeout_seconds: int = Field(300, ge=1, le=3600)
    fallback: Literal["older", "none"] = "none"  # a restore that fails verification: try the next older?
    keep_last: int | None = Field(None, ge=1, le=10_000)  # retention for `backup --prune`
    max_age_days: float | None = Field(None, gt=0, le=36_500)


class VolumeSpec(SpecModel):
    name: VolumeName
    mount: AbsolutePath
    size_gb: int = Field(ge=1, le=65_536)
    snapshot: Token | None = None  # create it from this snapshot (when no backup of it exists)
    backup: VolumeBackupSpec | None = None
    type: Token | None = None  # the cloud's volume type (gp3, io2...); default: the cloud's
    iops: int | None = Field(None, ge=100, le=256_000)
    throughput: int | None = Field(None, ge=125, le=4000)  # MiB/s
    encrypted: bool | None = None  # default: the cloud's (or the account's default encryption)
    kms_key: Token | None = None  # encrypted under this key rather than the cloud's default one

    @model_validator(mode="after")
    def _kms_key_means_encrypted(self) -> VolumeSpec:
        if self.kms_key is not None and self.encrypted is False:
            raise invalid("a volume with a kms_key is encrypted: encrypted: false contradicts it",
                          "drop encrypted: false, or the kms_key", at="encrypted")
        return self


class RestoreStep(SpecModel):
    """One restore hook: a shell `command`, a named `recipe` from recipes/, or the group's `dump`
    of that name fetched from the bucket and fed to its restore command (exactly one)."""

    command: Command | None = None
    recipe: Token | None = None
    dump: VolumeName | None = None
    timeout_seconds: int = Field(600, ge=1, le=86_400)

    @model_validator(mode="after")
    def _exactly_one_action(self) -> RestoreStep:
        if sum(value is not None for value in (self.command, self.recipe, self.dump)) != 1:
            raise invalid("a restore step needs exactly one of 'command', 'recipe' or 'dump'",
                          "write - command: ...")
        return self


class DumpSpec(SpecModel):
    """An application backup taken on the node: `command` writes the dump to its standard output,
    `restore` reads one on its standard input. Kept in the spec's bucket (`buckets:`)."""

    name: VolumeName
    command: Command
    restore: Command
    timeout_seconds: int = Field(600, ge=1, le=86_400)
    fallback: Literal["older", "none"] = "none"  # a dump refused by its digest: try the next older one


class TcpCheckSpec(SpecModel):
    port: Port = Field(ge=1, le=65535)
    host: Host | None = None  # defaults to the node itself


class HttpCheckSpec(SpecModel):
    url: Url  # `{hostname}` is replaced by the node's name
    expect_status: int = Field(200, ge=100, le=599)


class CheckSpec(SpecModel):
    """One check after restore: exactly one of `tcp`, `http` or `command`."""

    tcp: TcpCheckSpec | None = None
    http: HttpCheckSpec | None = None
    command: Command | None = None
    timeout_seconds: int = Field(30, ge=1, le=3600)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> CheckSpec:
        kinds = [kind for kind in ("tcp", "http", "command") if getattr(self, kind) is not None]
        if len(kinds) != 1:
            raise invalid(
                "a check needs exactly one of 'tcp', 'http' or 'command'"
                + (f", found {' and '.join(kinds)}" if kinds else ""),
                "split it into one check per item",
            )
        return self

    @property
    def kind(self) -> str:
        return "tcp" if self.tcp else "http" if self.http else "command"


class ServicePortSpec(SpecModel):
    """A port the group serves (a web group's 80 and 443), opened to its nodes from `sources`."""

    port: Port = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    sources: list[Cidr] = Field(default_factory=lambda: ["0.0.0.0/0"], min_length=1, max_length=16)


class NodeGroup(SpecModel):
    """Nodes sharing a role: named by `hostnames`, or by `count` and `hostname_pattern`."""

    role: Role
    image: Token = "worker"
    size: Token = "small"
    hostnames: list[Label] | None = Field(None, min_length=1)
    count: int | None = Field(None, ge=1, le=10_000)
    hostname_pattern: HostnamePattern | None = None
    standby: int = Field(0, ge=0, le=MAX_STANDBY)  # warm spares, named ROLE-standbyN (`watch` moves names to them)
    after: list[Role] = Field(default_factory=list)
    puppet: NodePuppetSpec = Field(default_factory=NodePuppetSpec)
    volumes: list[VolumeSpec] = Field(default_factory=list)
    restore: list[RestoreStep] = Field(default_factory=list)
    dumps: list[DumpSpec] = Field(default_factory=list)
    checks: list[CheckSpec] = Field(default_factory=list)
    placement: PlacementSpec | None = None  # default: provider.placement
    root_size_gb: int | None = Field(None, ge=1, le=16_384)  # default: the image's
    tags: Tags = Field(default_factory=dict)  # beside the spec's tags, on this group's resources
    extra: dict[Token, ScalarValue] = Field(default_factory=dict)  # driver create_node arguments for this group
    ports: list[ServicePortSpec] = Field(default_factory=list, max_length=32)  # opened to the group's nodes
    elastic_address: bool = False  # each node of the group gets its own public address (EC2 family)
    fallback_sizes: list[Token] = Field(default_factory=list, max_length=8)  # tried in turn when `size` has no capacity

    def dump(self, name: str) -> DumpSpec:
        """The group's dump of this name; KeyError when there is none."""
        for dump in self.dumps:
            if dump.name == name:
                return dump
        raise KeyError(name)

    def expand_hostnames(self) -> list[str]:
        """The group's hostnames in order: the explicit list, or the pattern for n = 1..count."""
        if self.hostnames is not None:
            return list(self.hostnames)
        assert self.count is not None and self.hostname_pattern is not None  # checked on load
        return [self.hostname_pattern.format(n=n) for n in range(1, self.count + 1)]

    def standby_hostnames(self) -> list[str]:
        """The group's warm spares: ROLE-standby1..N (built by `up` like the others, serving no name)."""
        return [f"{self.role}-standby{n}" for n in range(1, self.standby + 1)]

    def all_hostnames(self) -> list[str]:
        """Every node `up` builds for the group: the named ones, then the standbys."""
        return self.expand_hostnames() + self.standby_hostnames()


class SiteSpec(SpecModel):
    """A failover site: another provider block the environment can be rebuilt on."""

    name: SiteName
    provider: ProviderSpec
    copy_backups: bool = False  # `backup` copies each new good snapshot here (and `--prune` prunes here too)


class EnvironmentSpec(SpecModel):
    """A whole environment: the root of the spec. Build it with drbootstrap.spec.load_spec."""

    environment: EnvironmentName
    domain: DnsName
    provider: ProviderSpec
    security: SecuritySpec = Field(default_factory=SecuritySpec)
    master: MasterSpec = Field(default_factory=MasterSpec)
    nodes: list[NodeGroup] = Field(default_factory=list)
    drill: DrillSpec = Field(default_factory=DrillSpec)
    watch: WatchSpec = Field(default_factory=WatchSpec)
    sites: list[SiteSpec] = Field(default_factory=list)
    public_dns: PublicDnsSpec | None = None
    failover: FailoverSpec = Field(default_factory=FailoverSpec)
    state: StateSpec = Field(default_factory=StateSpec)
    buckets: BucketSpec | None = None
    tags: Tags = Field(default_factory=dict)  # on every resource made for the environment

    _source_path: Path | None = PrivateAttr(default=None)

    @property
    def source_path(self) -> Path | None:
        """The file this spec was loaded from (None when built in code)."""
        return self._source_path

    def fqdn(self, hostname: str) -> str:
        return f"{hostname}.{self.domain}"

    def group(self, role: str) -> NodeGroup:
        """The node group with this role; KeyError when there is none."""
        for group in self.nodes:
            if group.role == role:
                return group
        raise KeyError(role)

    def worker_hostnames(self) -> list[str]:
        """Every worker hostname, in spec order (the master excluded; standbys included)."""
        return [name for group in self.nodes for name in group.all_hostnames()]

    def secret_refs(self) -> list[tuple[str, SecretRef]]:
        """Every credential reference with a dotted description of where it is written."""
        found: list[tuple[str, SecretRef]] = []
        found += [(f"provider.credentials.{k}", v) for k, v in self.provider.credentials.items()]
        if self.security.psk is not None:
            found.append(("security.psk", self.security.psk))
        if self.master.dynamic_dns is not None:
            found.append(("master.dynamic_dns.tsig_secret", self.master.dynamic_dns.tsig_secret))
        for i, site in enumerate(self.sites):
            found += [
                (f"sites[{i}].provider.credentials.{k}", v) for k, v in site.provider.credentials.items()
            ]
        if self.public_dns is not None:
            found += [(f"public_dns.credentials.{k}", v) for k, v in self.public_dns.credentials.items()]
        found += [(f"state.credentials.{k}", v) for k, v in self.state.credentials.items()]
        if self.state.encryption_key is not None:
            found.append(("state.encryption_key", self.state.encryption_key))
        if self.buckets is not None:
            found += [(f"buckets.credentials.{k}", v) for k, v in self.buckets.credentials.items()]
            if self.buckets.encryption_key is not None:
                found.append(("buckets.encryption_key", self.buckets.encryption_key))
        return found
