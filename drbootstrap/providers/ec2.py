"""EC2 and Eucalyptus specifics: drivers from the provider block, and the per-environment key pair,
security group, elastic addresses and volumes from snapshots, all idempotent and paced.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from libcloud.compute.base import Node, NodeDriver, StorageVolume, VolumeSnapshot
from libcloud.compute.drivers.ec2 import EC2NodeDriver, EucNodeDriver

from drbootstrap.errors import ProviderError
from drbootstrap.paths import write_private_file
from drbootstrap.providers.cloud import (
    ENVIRONMENT_TAG,
    HOSTNAME_TAG,
    Pacing,
    ProviderSettings,
    list_tagged_nodes,
    node_tags,
    resolve_location,
    split_extra,
)

DEFAULT_REGION = "us-east-1"
DEVICE_TAG = "drbootstrap:device"

# EC2 is eventually consistent: these answers mean "not yet" (a new instance or volume not yet
# visible or ready, a group still used by terminating instances), so they are retried with backoff.
NOT_YET = ("InvalidInstanceID.NotFound", "IncorrectState", "IncorrectInstanceState", "VolumeInUse",
           "DependencyViolation", "InvalidVolume.NotFound", "InvalidAllocationID.NotFound")


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    secure: bool
    path: str


def parse_endpoint(url: str) -> Endpoint:
    """https://ec2.example:8773/services/compute -> host, port, TLS or not, path."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderError(f"endpoint {url!r} is not an http(s) URL", hint="write it like https://host:port/path")
    secure = parts.scheme == "https"
    return Endpoint(host=parts.hostname, port=parts.port or (443 if secure else 80), secure=secure,
                    path=parts.path or "/")


def aws_credentials(settings: ProviderSettings, environ: Mapping[str, str]) -> tuple[str, str, str | None]:
    """Access key, secret key and session token: from the spec's references, else AWS_*/EC2_* variables."""
    key = settings.secret("access_key_id", "access_key", "key") or environ.get("AWS_ACCESS_KEY_ID") \
        or environ.get("EC2_ACCESS_KEY")
    secret = settings.secret("secret_access_key", "secret_key", "secret") \
        or environ.get("AWS_SECRET_ACCESS_KEY") or environ.get("EC2_SECRET_KEY")
    token = settings.secret("session_token", "token") or environ.get("AWS_SESSION_TOKEN")
    if not key or not secret:
        raise ProviderError(f"provider {settings.name}: no access key and secret key",
                            hint="set credentials access_key_id and secret_access_key in the spec, "
                                 "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    return key, secret, token


def ec2_driver_kwargs(settings: ProviderSettings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for EC2NodeDriver: region, optional endpoint, signature version 4."""
    environ = os.environ if environ is None else environ
    key, secret, token = aws_credentials(settings, environ)
    region = settings.region or environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION") or DEFAULT_REGION
    if region not in EC2NodeDriver.list_regions():
        raise ProviderError(f"provider ec2: unknown region {region!r}",
                            hint="use an EC2 region name such as us-east-1, or set endpoint for another cloud")
    constructor_extra, _ = split_extra(EC2NodeDriver, settings.extra)
    kwargs: dict[str, Any] = {"key": key, "secret": secret, "region": region, "signature_version": "4",
                              **constructor_extra}
    if token:
        kwargs["token"] = token
    endpoint_url = settings.endpoint or environ.get("AWS_ENDPOINT_URL_EC2") or environ.get("AWS_ENDPOINT_URL")
    if endpoint_url:
        endpoint = parse_endpoint(endpoint_url)
        kwargs.update(host=endpoint.host, port=endpoint.port, secure=endpoint.secure)
    return kwargs


def build_ec2_driver(settings: ProviderSettings, *, driver_class: type[NodeDriver] = EC2NodeDriver,
                     environ: Mapping[str, str] | None = None) -> NodeDriver:
    return driver_class(**ec2_driver_kwargs(settings, environ))


def eucalyptus_driver_kwargs(settings: ProviderSettings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Eucalyptus speaks EC2 at its own endpoint (euca2ools' EC2_URL) and path."""
    environ = os.environ if environ is None else environ
    key, secret, _ = aws_credentials(settings, environ)
    url = settings.endpoint or environ.get("EC2_URL")
    if not url:
        raise ProviderError("provider eucalyptus: no endpoint",
                            hint="set endpoint (e.g. https://cloud:8773/services/compute) or EC2_URL")
    endpoint = parse_endpoint(url)
    path = endpoint.path if endpoint.path != "/" else None  # libcloud's default /services/Eucalyptus
    constructor_extra, _ = split_extra(EucNodeDriver, settings.extra)
    return {"key": key, "secret": secret, "host": endpoint.host, "port": endpoint.port,
            "secure": endpoint.secure, "path": path, **constructor_extra}


def build_eucalyptus_driver(settings: ProviderSettings, *, driver_class: type[NodeDriver] = EucNodeDriver,
                            environ: Mapping[str, str] | None = None) -> NodeDriver:
    return driver_class(**eucalyptus_driver_kwargs(settings, environ))


def require_extension(driver: NodeDriver, method: str, feature: str) -> None:
    """Say clearly which feature this cloud's driver lacks, instead of an AttributeError later."""
    if not callable(getattr(driver, method, None)):
        raise ProviderError(f"the {driver.name} driver does not support {feature} (no {method})",
                            hint=f"remove {feature} from the spec for this provider")


def environment_resource_name(environment: str) -> str:
    return f"drb-{environment}"


# ---- key pair ----------------------------------------------------------------------------------


def ensure_key_pair(driver: NodeDriver, environment: str, *, public_key: str | None = None,
                    private_key_path: Path | None = None, pacing: Pacing | None = None) -> str:
    """The environment's key pair: the operator's public key imported, or a new pair whose private
    key is written 0600 to `private_key_path`. Returns the key pair name."""
    pacing = pacing or Pacing()
    name = environment_resource_name(environment)
    # Listing, not get_key_pair: clouds disagree on how a missing pair is reported.
    key_pairs = pacing.call(driver, "list key pairs", driver.list_key_pairs)
    if any(key_pair.name == name for key_pair in key_pairs):
        return name
    if public_key:
        pacing.call(driver, f"import key pair {name}", lambda: driver.import_key_pair_from_string(name, public_key))
        return name
    if private_key_path is None:
        raise ProviderError(f"key pair {name}: neither a public key to import nor a path for a new private key",
                            hint="give the operator's public key, or a path where the new private key goes")
    created = pacing.call(driver, f"create key pair {name}", lambda: driver.create_key_pair(name))
    write_private_file(private_key_path, created.private_key)
    return name


# ---- security group ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IngressRule:
    protocol: str  # tcp | udp
    port: int
    source: str  # "group" (node to node) or a CIDR


SERVICE_PORTS = (("tcp", 53), ("udp", 53), ("tcp", 61613), ("tcp", 61614), ("tcp", 8140))


def recipe_ingress_rules(operator_cidr: str) -> list[IngressRule]:
    """What the recipe needs: DNS, STOMP (+TLS) and Puppet between nodes of the group; from the
    operator's address SSH and the same services (the controller probes DNS, STOMP and the CA)."""
    if "/" not in operator_cidr:
        operator_cidr = f"{operator_cidr}/32"
    rules = [IngressRule(protocol, port, "group") for protocol, port in SERVICE_PORTS]
    rules += [IngressRule("tcp", 22, operator_cidr)]
    rules += [IngressRule(protocol, port, operator_cidr) for protocol, port in SERVICE_PORTS]
    return rules


def security_group_rules(driver: NodeDriver, group_id: str) -> set[IngressRule]:
    """The group's ingress rules, read from DescribeSecurityGroups ourselves: libcloud 3.9's parser
    loses the CIDRs of a permission that also names groups (its loop variable shadows the rule)."""
    params = {"Action": "DescribeSecurityGroups", "GroupId.1": group_id}
    body = driver.connection.request(driver.path, params=params).object
    rules = set()
    for permission in body.iterfind(".//{*}ipPermissions/{*}item"):
        protocol, port = permission.findtext("{*}ipProtocol"), permission.findtext("{*}fromPort")
        if protocol not in ("tcp", "udp") or port is None:
            continue
        for cidr in permission.iterfind("{*}ipRanges/{*}item/{*}cidrIp"):
            rules.add(IngressRule(protocol, int(port), cidr.text or ""))
        for pair in permission.iterfind("{*}groups/{*}item/{*}groupId"):
            rules.add(IngressRule(protocol, int(port), "group" if pair.text == group_id else pair.text or ""))
    return rules


def ensure_security_group(driver: NodeDriver, environment: str, operator_cidr: str, *,
                          vpc_id: str | None = None, pacing: Pacing | None = None) -> str:
    """The environment's security group with exactly the recipe's rules added; returns its id."""
    require_extension(driver, "ex_create_security_group", "security groups")
    pacing = pacing or Pacing()
    name = environment_resource_name(environment)
    groups = pacing.call(driver, f"find security group {name}",
                         lambda: driver.ex_get_security_groups(filters={"group-name": name}))
    if groups:
        group_id = groups[0].id
    else:
        created = pacing.call(driver, f"create security group {name}", lambda: driver.ex_create_security_group(
            name, f"drbootstrap environment {environment}", vpc_id=vpc_id))
        group_id = created["group_id"]
        pacing.call(driver, f"tag security group {name}",
                    lambda: driver.ex_create_tags(SimpleNamespace(id=group_id), {ENVIRONMENT_TAG: environment}))
    present = pacing.call(driver, f"read rules of {name}", lambda: security_group_rules(driver, group_id))
    for rule in recipe_ingress_rules(operator_cidr):
        if rule in present:
            continue
        source = ({"group_pairs": [{"group_id": group_id}]} if rule.source == "group"
                  else {"cidr_ips": [rule.source]})
        pacing.call(driver, f"open {rule.protocol}/{rule.port} in {name}",
                    lambda rule=rule, source=source: driver.ex_authorize_security_group_ingress(
                        group_id, rule.port, rule.port, protocol=rule.protocol, **source))
    return group_id


# ---- elastic addresses -------------------------------------------------------------------------


def _describe_addresses(driver: NodeDriver, filters: Mapping[str, str]) -> list[Any]:
    """DescribeAddresses with filters (libcloud only offers the unfiltered call)."""
    params = {"Action": "DescribeAddresses"}
    for index, (name, value) in enumerate(filters.items(), start=1):
        params[f"Filter.{index}.Name"] = name
        params[f"Filter.{index}.Value.1"] = value
    response = driver.connection.request(driver.path, params=params).object
    return driver._to_addresses(response, only_associated=False)


def environment_addresses(driver: NodeDriver, environment: str, *, pacing: Pacing | None = None) -> list[Any]:
    pacing = pacing or Pacing()
    return pacing.call(driver, "list addresses",
                       lambda: _describe_addresses(driver, {f"tag:{ENVIRONMENT_TAG}": environment}))


def ensure_elastic_address(driver: NodeDriver, node: Node, *, pacing: Pacing | None = None) -> str:
    """An elastic address tagged for the node's environment and hostname, associated with it."""
    require_extension(driver, "ex_allocate_address", "elastic addresses")
    pacing = pacing or Pacing()
    tags = node_tags(node)
    environment, hostname = tags.get(ENVIRONMENT_TAG), tags.get(HOSTNAME_TAG)
    if not environment or not hostname:
        raise ProviderError(f"node {node.id} carries no drbootstrap tags; refusing to give it an address")
    mine = pacing.call(driver, "list addresses", lambda: _describe_addresses(
        driver, {f"tag:{ENVIRONMENT_TAG}": environment, f"tag:{HOSTNAME_TAG}": hostname}))
    if mine:
        address = mine[0]
    else:
        address = pacing.call(driver, f"allocate address for {hostname}", lambda: driver.ex_allocate_address(domain="vpc"))
        allocation = SimpleNamespace(id=address.extra["allocation_id"])
        # Tag at once: an address allocated by a run that then crashes is still found and released.
        pacing.call(driver, f"tag address for {hostname}", lambda: driver.ex_create_tags(
            allocation, {ENVIRONMENT_TAG: environment, HOSTNAME_TAG: hostname}), transient_codes=NOT_YET)
    if address.instance_id != node.id:
        pacing.call(driver, f"associate address with {hostname}",
                    lambda: driver.ex_associate_address_with_node(node, address, domain="vpc"), transient_codes=NOT_YET)
    return address.ip


# ---- volumes -----------------------------------------------------------------------------------


def environment_volumes(driver: NodeDriver, environment: str, *, pacing: Pacing | None = None) -> list[StorageVolume]:
    pacing = pacing or Pacing()
    volumes = pacing.call(driver, "list volumes",
                          lambda: driver.list_volumes(ex_filters={f"tag:{ENVIRONMENT_TAG}": environment}))
    return [v for v in volumes if (v.extra.get("tags") or {}).get(ENVIRONMENT_TAG) == environment]


def ensure_volume_from_snapshot(driver: NodeDriver, node: Node, *, snapshot_id: str | None, device: str,
                                size_gb: int, zone: str, pacing: Pacing | None = None) -> StorageVolume:
    """A volume made from `snapshot_id` (None: an empty one) in `zone`, tagged for the node, attached at `device`."""
    require_extension(driver, "create_volume", "volumes")
    pacing = pacing or Pacing()
    tags = node_tags(node)
    environment, hostname = tags[ENVIRONMENT_TAG], tags[HOSTNAME_TAG]
    for volume in environment_volumes(driver, environment, pacing=pacing):
        volume_tags = volume.extra.get("tags") or {}
        if volume_tags.get(HOSTNAME_TAG) == hostname and volume_tags.get(DEVICE_TAG) == device:
            break
    else:
        location = resolve_location(driver, zone, pacing=pacing)
        snapshot = VolumeSnapshot(id=snapshot_id, driver=driver) if snapshot_id else None
        volume = pacing.call(driver, f"create volume {device} for {hostname}", lambda: driver.create_volume(
            size_gb, f"{hostname}-{device.rsplit('/', 1)[-1]}", location=location, snapshot=snapshot))
        pacing.call(driver, f"tag volume {volume.id}", lambda: driver.ex_create_tags(
            volume, {ENVIRONMENT_TAG: environment, HOSTNAME_TAG: hostname, DEVICE_TAG: device}),
            transient_codes=NOT_YET)
    if volume.extra.get("instance_id") != node.id:
        pacing.call(driver, f"attach volume {volume.id} to {hostname}",
                    lambda: driver.attach_volume(node, volume, device), transient_codes=NOT_YET)
    return volume


# ---- teardown ----------------------------------------------------------------------------------


TERMINATE_BATCH = 100


def terminate_environment_instances(driver: NodeDriver, environment: str, *, pacing: Pacing | None = None) -> list[str]:
    """Terminate every live instance of the environment, up to TERMINATE_BATCH per API call: a
    500-node teardown costs 5 requests of the bucket, not 500. Returns the hostnames."""
    pacing = pacing or Pacing()
    nodes = sorted(list_tagged_nodes(driver, {ENVIRONMENT_TAG: environment}, pacing=pacing), key=lambda n: n.id)
    for start in range(0, len(nodes), TERMINATE_BATCH):
        batch = [node.id for node in nodes[start:start + TERMINATE_BATCH]]
        params = {"Action": "TerminateInstances", **driver._pathlist("InstanceId", batch)}
        # Terminating twice is harmless, so a transient failure is simply repeated.
        pacing.call(driver, f"terminate {len(batch)} instances",
                    lambda params=params: driver.connection.request(driver.path, params=params).object)
    return sorted(node_tags(node).get(HOSTNAME_TAG, node.id) for node in nodes)


def destroy_ec2_environment(driver: NodeDriver, environment: str, *, pacing: Pacing | None = None) -> list[str]:
    """Terminate the nodes, release the addresses, delete volumes, security group and key pair."""
    pacing = pacing or Pacing()
    for address in environment_addresses(driver, environment, pacing=pacing):
        if address.instance_id:
            pacing.call(driver, f"disassociate {address.ip}",
                        lambda address=address: driver.ex_disassociate_address(address, domain="vpc"))
        pacing.call(driver, f"release {address.ip}",
                    lambda address=address: driver.ex_release_address(address, domain="vpc"))
    hostnames = terminate_environment_instances(driver, environment, pacing=pacing)
    for volume in environment_volumes(driver, environment, pacing=pacing):
        if volume.extra.get("instance_id"):
            pacing.call(driver, f"detach {volume.id}", lambda volume=volume: driver.detach_volume(volume, ex_force=True), transient_codes=NOT_YET)
        pacing.call(driver, f"delete {volume.id}", lambda volume=volume: driver.destroy_volume(volume), transient_codes=NOT_YET)
    name = environment_resource_name(environment)
    groups = pacing.call(driver, f"find security group {name}",
                         lambda: driver.ex_get_security_groups(filters={"group-name": name}))
    for group in groups:
        pacing.call(driver, f"delete security group {name}",
                    lambda group=group: driver.ex_delete_security_group_by_id(group.id), transient_codes=NOT_YET)
    key_pairs = pacing.call(driver, "list key pairs", driver.list_key_pairs)
    for key_pair in (k for k in key_pairs if k.name == name):
        pacing.call(driver, f"delete key pair {name}", lambda key_pair=key_pair: driver.delete_key_pair(key_pair))
    return hostnames

