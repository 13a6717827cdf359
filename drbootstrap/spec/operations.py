"""The spec's sections for the jobs around recovery: drills and the watcher (and whom they notify),
failover (public DNS records, the fence), and where state and dumps are kept (state, buckets).

Part of the spec's models (drbootstrap.spec.models holds the environment, its master and its nodes).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from drbootstrap.spec.model_base import SpecModel
from drbootstrap.spec.types import (
    AbsolutePath,
    Command,
    DnsName,
    Host,
    RecordName,
    Secret,
    SiteName,
    Token,
    Url,
    invalid,
)

Port = int


class NotifySpec(SpecModel):
    """Who hears of an event (a drill's result, a resurrection, a pause): a command (the JSON on its
    standard input) and/or a webhook (POSTed JSON)."""

    command: Command | None = None
    webhook: Url | None = None
    timeout_seconds: int = Field(10, ge=1, le=300)
    on_success: bool = False  # drills: a pass too (failures and missed targets always are)

    @field_validator("webhook")
    @classmethod
    def _no_credentials_in_the_url(cls, value: str | None) -> str | None:
        # Never echoed: the part before "@" is probably a password.
        if value is not None and "@" in value.split("/", 3)[2]:
            raise invalid("a webhook URL must not carry a user or password",
                          "give the receiver a URL without credentials; the message holds no secret")
        return value

    @model_validator(mode="after")
    def _something_to_notify(self) -> NotifySpec:
        if self.command is None and self.webhook is None:
            raise invalid("needs a 'command' or a 'webhook' (or both)",
                          "write command: ... or webhook: http://host:port/path, or remove notify")
        return self


class MeltdownSpec(SpecModel):
    """The watcher pauses resurrection when at least `nodes` nodes AND at least `percent` % of the
    environment went unhealthy within `window_minutes`."""

    nodes: int = Field(5, ge=1, le=10_000)
    percent: float = Field(20.0, gt=0, le=100)
    window_minutes: float = Field(10.0, gt=0, le=1440)


class WatchSpec(SpecModel):
    """`drbootstrap watch`: how often it looks, how long a node may be silent, when it pauses."""

    interval_seconds: float = Field(30.0, ge=1, le=3600)
    silent_intervals: int = Field(3, ge=1, le=1000)
    meltdown: MeltdownSpec = Field(default_factory=MeltdownSpec)
    notify: NotifySpec | None = None


class DrillSpec(SpecModel):
    name_prefix: str = Field("drill-", pattern=r"^[a-z0-9-]{0,20}$")
    rto_minutes: float = Field(30.0, gt=0, le=10_000)
    teardown: Literal["always", "on_success", "never"] = "on_success"
    # How long a drill kept by its teardown policy (or left by a crash) lives before it is reaped.
    expire_hours: float = Field(24.0, gt=0, le=720)
    notify: NotifySpec | None = None


class DnsRecordSpec(SpecModel):
    name: RecordName
    type: Literal["A", "AAAA", "CNAME"] = "A"
    targets: dict[SiteName, Host] = Field(min_length=1)  # site name -> address or name at that site


class PublicDnsSpec(SpecModel):
    """Public records switched on failover: `rfc2136` (server, port, TSIG key name and algorithm here,
    the secret as `credentials.tsig_secret`) or a libcloud DNS provider."""

    provider: Token
    zone: DnsName
    credentials: dict[Token, Secret] = Field(default_factory=dict)
    ttl: int = Field(60, ge=1, le=86_400)
    records: list[DnsRecordSpec] = Field(min_length=1)
    server: Host | None = None  # rfc2136: the zone's primary server
    port: Port = Field(53, ge=1, le=65535)
    tsig_key_name: DnsName | None = None
    tsig_algorithm: Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha1", "hmac-md5"] = "hmac-sha256"

    @model_validator(mode="after")
    def _rfc2136_needs_server_and_key(self) -> PublicDnsSpec:
        if self.provider == "rfc2136":
            missing = [name for name, value in (("server", self.server), ("tsig_key_name", self.tsig_key_name),
                                                ("credentials.tsig_secret", self.credentials.get("tsig_secret")))
                       if value is None]
            if missing:
                raise invalid(f"provider rfc2136 needs {', '.join(missing)}",
                              "name the zone's primary server and the TSIG key allowed to update it")
        return self


class FailoverSpec(SpecModel):
    """How `failover` treats the site it leaves: its nodes stopped, destroyed, or left running."""

    fence: Literal["stop", "destroy", "none"] = "stop"


class StateSpec(SpecModel):
    """Where the environment's journal, reports and generated keys live: `local` (the state
    directory) or `s3` (any S3 API; keys sealed with `encryption_key`, one command at a time by lease)."""

    backend: Literal["local", "s3"] = "local"
    bucket: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = Field("drbootstrap", pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$|^$")
    region: Token | None = None
    endpoint: Url | None = None
    credentials: dict[Literal["access_key_id", "secret_access_key", "session_token"], Secret] = Field(
        default_factory=dict)
    encryption_key: Secret | None = None  # 32 bytes, hex or base64: seals the keys; never stored beside them
    lease_seconds: int = Field(60, ge=5, le=3600)
    retry_seconds: int = Field(120, ge=2, le=3600)  # how long a write retries a failing endpoint
    take_over_expired: bool = False  # scheduled drills: take an expired lease without --take-over

    @model_validator(mode="after")
    def _s3_needs_bucket_and_key(self) -> StateSpec:
        if self.backend == "s3" and self.bucket is None:
            raise invalid("state.backend s3 needs a bucket", "add bucket: NAME")
        if self.backend == "s3" and self.encryption_key is None:
            raise invalid("state.backend s3 needs an encryption_key to seal the keys kept there",
                          "add encryption_key: ${env:DRB_STATE_KEY} (32 random bytes: openssl rand -hex 32)")
        return self


class BucketRetentionSpec(SpecModel):
    keep_last: int | None = Field(None, ge=1, le=10_000)  # per node and dump
    max_age_days: float | None = Field(None, gt=0, le=36_500)


class BucketSpec(SpecModel):
    """The object store holding the dumps: a libcloud storage driver (`local`: a directory on the
    controller; `s3`: any S3 API at `endpoint`; or another libcloud storage provider name)."""

    driver: Token
    container: Token
    prefix: Token = "drbootstrap"
    path: AbsolutePath | None = None  # `local`: the directory whose subdirectories are containers
    endpoint: Url | None = None  # `s3`: the S3 API's URL (default: AWS in `region`)
    region: Token = "us-east-1"
    credentials: dict[Token, Secret] = Field(default_factory=dict)  # key, secret
    signed_url_seconds: int = Field(300, ge=10, le=3600)  # how long a node may fetch one object
    encryption_key: Secret | None = None  # 256-bit key sealing each dump at rest (backups/sealing.py)
    retention: BucketRetentionSpec = Field(default_factory=BucketRetentionSpec)
