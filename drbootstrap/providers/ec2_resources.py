"""The EC2 family's per-environment resources: key pair, security group, elastic addresses, volumes
(their snapshots, the backups, are ec2_snapshots.py's).

Every call that creates something is ONE request that tags what it creates (TagSpecification), and
a create that may have reached the cloud is looked up by its tags or name before it is repeated: a
retried or interrupted run finds what it made, never makes a second one, and teardown finds it all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from libcloud.compute.base import Node, StorageVolume

from drbootstrap.backups.catalog import VOLUME_TAG
from drbootstrap.errors import ProviderError
from drbootstrap.providers.ec2_instance_storage import VolumeKind
from drbootstrap.providers.nodes import ENVIRONMENT_TAG, HOSTNAME_TAG, node_id
from drbootstrap.providers.pacing import Pacing
from drbootstrap.providers.throttle import ErrorKind

if TYPE_CHECKING:  # every EC2 dialect's driver (EC2, Eucalyptus, a driver_class override) is one
    from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver

DEVICE_TAG = "drbootstrap:device"

# EC2 is eventually consistent: these answers mean "not yet" (a new instance or volume not yet
# visible or ready, a group still used by terminating instances), so they are retried with backoff.
NOT_YET = ("InvalidInstanceID.NotFound", "IncorrectState", "IncorrectInstanceState", "VolumeInUse",
           "DependencyViolation", "InvalidVolume.NotFound", "InvalidAllocationID.NotFound")


def volume_extra(volume: StorageVolume) -> dict[str, Any]:
    """The volume's extra: StorageVolume declares it optional, libcloud's EC2 driver always fills it."""
    return cast("dict[str, Any]", volume.extra)


def environment_resource_name(environment: str) -> str:
    return f"drb-{environment}"


def ec2_request(driver: BaseEC2NodeDriver, params: Mapping[str, str]) -> Any:
    """One raw EC2 Query API request (for what libcloud's driver does in two requests or not at all)."""
    return driver.connection.request(driver.path, params=dict(params)).object


def tag_specification(resource_type: str, tags: Mapping[str, str]) -> dict[str, str]:
    """TagSpecification.1 parameters: the tags are set by the create request itself."""
    params = {"TagSpecification.1.ResourceType": resource_type}
    for index, (key, value) in enumerate(tags.items(), start=1):
        params[f"TagSpecification.1.Tag.{index}.Key"] = key
        params[f"TagSpecification.1.Tag.{index}.Value"] = value
    return params


def create_tags(driver: BaseEC2NodeDriver, resource_id: str, tags: Mapping[str, str]) -> None:
    """CreateTags on one resource, numbered from 1 as the EC2 API documents (libcloud's from 0)."""
    params = {"Action": "CreateTags", "ResourceId.1": resource_id}
    for index, (key, value) in enumerate(tags.items(), start=1):
        params[f"Tag.{index}.Key"] = key
        params[f"Tag.{index}.Value"] = value
    ec2_request(driver, params)


def _unless_refused(lookup: Any) -> Any:
    """A before_retry hook: after a failure that may have reached the cloud, look before repeating."""
    def look(kind: ErrorKind) -> Any:
        return None if kind is ErrorKind.THROTTLED else lookup()
    return look


# ---- key pair ----------------------------------------------------------------------------------


def ensure_key_pair(driver: BaseEC2NodeDriver, environment: str, public_key: str, *, pacing: Pacing,
                    replaceable: Callable[[], bool], tags: Mapping[str, str] | None = None) -> str:
    """The environment's key pair holding `public_key` (whose private half is already on disk).

    A pair of that name with another key (its private key was lost) is replaced when `replaceable`
    (no instance uses it yet), else refused: a master launched with it could never be reached.
    """
    from drbootstrap.providers.operator_key import public_key_fingerprints

    name = environment_resource_name(environment)

    def existing() -> Any:
        # Listing, not get_key_pair: clouds disagree on how a missing pair is reported.
        return next((k for k in pacing.call(driver, "list key pairs", driver.list_key_pairs) if k.name == name), None)

    found = existing()
    if found is not None:
        if found.fingerprint in public_key_fingerprints(public_key):
            return name
        if not replaceable():
            raise ProviderError(f"key pair {name} holds another key than this environment's private key file, "
                                "and instances already use it, so they cannot be reached",
                                hint=f"restore the key file, or run `drbootstrap down` (or delete key pair {name}) "
                                     "and `up` again")
        pacing.call(driver, f"delete key pair {name}", lambda: driver.delete_key_pair(found))
    if tags:  # the spec's custom tags, set by the import itself
        import base64

        params = {"Action": "ImportKeyPair", "KeyName": name,
                  "PublicKeyMaterial": base64.b64encode(public_key.encode()).decode(),
                  **tag_specification("key-pair", {**tags, ENVIRONMENT_TAG: environment})}
        pacing.call(driver, f"import key pair {name}", lambda: ec2_request(driver, params),
                    before_retry=_unless_refused(existing))
        return name
    pacing.call(driver, f"import key pair {name}", lambda: driver.import_key_pair_from_string(name, public_key),
                before_retry=_unless_refused(existing))
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


def security_group_rules(driver: BaseEC2NodeDriver, group_id: str) -> set[IngressRule]:
    """The group's ingress rules, read from DescribeSecurityGroups ourselves: libcloud 3.9's parser
    loses the CIDRs of a permission that also names groups (its loop variable shadows the rule)."""
    body = ec2_request(driver, {"Action": "DescribeSecurityGroups", "GroupId.1": group_id})
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


def ingress_permissions(group_id: str, rules: list[IngressRule]) -> dict[str, str]:
    """IpPermissions.N parameters, one per rule: from the group itself or from a CIDR."""
    params: dict[str, str] = {}
    for index, rule in enumerate(rules, start=1):
        prefix = f"IpPermissions.{index}"
        params.update({f"{prefix}.IpProtocol": rule.protocol, f"{prefix}.FromPort": str(rule.port),
                       f"{prefix}.ToPort": str(rule.port)})
        if rule.source == "group":
            params[f"{prefix}.Groups.1.GroupId"] = group_id
        else:
            params[f"{prefix}.IpRanges.1.CidrIp"] = rule.source
    return params


def find_security_groups(driver: BaseEC2NodeDriver, environment: str, pacing: Pacing) -> list[Any]:
    name = environment_resource_name(environment)
    return pacing.call(driver, f"find security group {name}",
                       lambda: driver.ex_get_security_groups(filters={"group-name": name}))


def ensure_security_group(driver: BaseEC2NodeDriver, environment: str, operator_cidr: str, *,
                          vpc_id: str | None = None, pacing: Pacing, tags: Mapping[str, str] | None = None) -> str:
    """The environment's security group (tagged at creation) with exactly the recipe's rules added; its id."""
    name = environment_resource_name(environment)

    def existing_id() -> str | None:
        groups = find_security_groups(driver, environment, pacing)
        return groups[0].id if groups else None

    group_id = existing_id()
    if group_id is None:
        params = {"Action": "CreateSecurityGroup", "GroupName": name,
                  "GroupDescription": f"drbootstrap environment {environment}",
                  **tag_specification("security-group", {**(tags or {}), ENVIRONMENT_TAG: environment})}
        if vpc_id:
            params["VpcId"] = vpc_id
        created = pacing.call(driver, f"create security group {name}", lambda: ec2_request(driver, params),
                              before_retry=_unless_refused(existing_id))
        group_id = created if isinstance(created, str) else created.findtext(".//{*}groupId")
    def read_rules() -> set[IngressRule]:
        return pacing.call(driver, f"read rules of {name}", lambda: security_group_rules(driver, group_id))

    present = read_rules()
    missing = [rule for rule in recipe_ingress_rules(operator_cidr) if rule not in present]
    if missing:
        # All of them in one request; an answer lost on the way is checked by reading the rules again.
        params = {"Action": "AuthorizeSecurityGroupIngress", "GroupId": group_id,
                  **ingress_permissions(group_id, missing)}
        pacing.call(driver, f"open {len(missing)} ports in {name}", lambda: ec2_request(driver, params),
                    before_retry=_unless_refused(lambda: True if set(missing) <= read_rules() else None))
    return group_id


# ---- elastic addresses -------------------------------------------------------------------------


def describe_addresses(driver: BaseEC2NodeDriver, filters: Mapping[str, str]) -> list[Any]:
    """DescribeAddresses with filters (libcloud only offers the unfiltered call)."""
    params = {"Action": "DescribeAddresses"}
    for index, (name, value) in enumerate(filters.items(), start=1):
        params[f"Filter.{index}.Name"] = name
        params[f"Filter.{index}.Value.1"] = value
    return driver._to_addresses(ec2_request(driver, params), only_associated=False)


def environment_addresses(driver: BaseEC2NodeDriver, environment: str, *, pacing: Pacing) -> list[Any]:
    return pacing.call(driver, "list addresses",
                       lambda: describe_addresses(driver, {f"tag:{ENVIRONMENT_TAG}": environment}))


def ensure_elastic_address(driver: BaseEC2NodeDriver, node: Node, environment: str, hostname: str, *,
                           pacing: Pacing, extra_tags: Mapping[str, str] | None = None) -> str:
    """An elastic address tagged (at allocation) for the node's environment and hostname (and the
    spec's custom tags), associated with it (taken from a relaunched node's predecessor)."""
    tags = {ENVIRONMENT_TAG: environment, HOSTNAME_TAG: hostname}

    def mine() -> Any:
        found = pacing.call(driver, "list addresses", lambda: describe_addresses(
            driver, {f"tag:{key}": value for key, value in tags.items()}))
        return found[0] if found else None

    address = mine()
    if address is None:
        params = {"Action": "AllocateAddress", "Domain": "vpc",
                  **tag_specification("elastic-ip", {**(extra_tags or {}), **tags})}
        allocated = pacing.call(driver, f"allocate address for {hostname}", lambda: ec2_request(driver, params),
                                before_retry=_unless_refused(mine))
        address = allocated if not hasattr(allocated, "findtext") else SimpleNamespace(
            ip=allocated.findtext("{*}publicIp"), instance_id=None, domain="vpc",
            extra={"allocation_id": allocated.findtext("{*}allocationId")})
    if address.instance_id != node.id:
        # Reassociation allowed: the address is this hostname's, and may still be held by the
        # node's terminated predecessor (a relaunch).
        params = {"Action": "AssociateAddress", "AllocationId": str(address.extra.get("allocation_id")),
                  "InstanceId": node_id(node), "AllowReassociation": "true"}
        pacing.call(driver, f"associate address with {hostname}", lambda: ec2_request(driver, params),
                    transient_codes=NOT_YET)
    return address.ip


def move_elastic_address(driver: BaseEC2NodeDriver, environment: str, hostname: str, to: Node, *,
                         pacing: Pacing) -> str | None:
    """The elastic address tagged for HOSTNAME, re-associated with TO (a standby); None when it has none."""
    found = pacing.call(driver, "list addresses", lambda: describe_addresses(
        driver, {f"tag:{ENVIRONMENT_TAG}": environment, f"tag:{HOSTNAME_TAG}": hostname}))
    if not found:
        return None
    address = found[0]
    if address.instance_id == to.id:
        return str(address.ip)
    if address.instance_id:
        pacing.call(driver, f"disassociate {address.ip} from {hostname}",
                    functools.partial(driver.ex_disassociate_address, address, domain="vpc"))
    pacing.call(driver, f"associate {address.ip} with {to.name}",
                lambda: driver.ex_associate_address_with_node(to, address, domain="vpc"), transient_codes=NOT_YET)
    return str(address.ip)


# ---- volumes -----------------------------------------------------------------------------------


# A volume in these states is on its way out: it neither counts as made nor can be attached.
GOING = ("deleting", "deleted")


def environment_volumes(driver: BaseEC2NodeDriver, environment: str, *, pacing: Pacing) -> list[StorageVolume]:
    volumes = pacing.call(driver, "list volumes",
                          lambda: driver.list_volumes(ex_filters={f"tag:{ENVIRONMENT_TAG}": environment}))
    return [v for v in volumes if (v.extra.get("tags") or {}).get(ENVIRONMENT_TAG) == environment
            and v.extra.get("state") not in GOING]


def node_volumes(driver: BaseEC2NodeDriver, environment: str, hostname: str, *, pacing: Pacing) -> list[StorageVolume]:
    """The live volumes `up` made for `hostname`, in id order."""
    tags = {ENVIRONMENT_TAG: environment, HOSTNAME_TAG: hostname}
    found = pacing.call(driver, f"list volumes of {hostname}", lambda: driver.list_volumes(
        ex_filters={f"tag:{key}": value for key, value in tags.items()}))
    return sorted((v for v in found if all((volume_extra(v).get("tags") or {}).get(k) == value
                                           for k, value in tags.items()) and volume_extra(v).get("state") not in GOING),
                  key=lambda v: str(v.id))


def node_volume(driver: BaseEC2NodeDriver, environment: str, hostname: str, volume: str, *,
                pacing: Pacing) -> StorageVolume | None:
    """The volume `up` made for `hostname` as the spec's `volume` (its drbootstrap:volume tag), or
    at device `volume` (/dev/sdf: a volume made before that tag existed)."""
    return next((v for v in node_volumes(driver, environment, hostname, pacing=pacing)
                 if volume in ((volume_extra(v).get("tags") or {}).get(VOLUME_TAG),
                               (volume_extra(v).get("tags") or {}).get(DEVICE_TAG))), None)


def discard_volume(driver: BaseEC2NodeDriver, environment: str, hostname: str, volume: str, *,
                   pacing: Pacing) -> bool:
    """Detach and delete `hostname`'s volume `volume` (a restore that failed verification makes way
    for an older backup); False when it has none. The delete waits out the detach, so the device
    is free when this returns."""
    found = node_volume(driver, environment, hostname, volume, pacing=pacing)
    if found is None:
        return False
    instance_id = volume_extra(found).get("instance_id")
    if instance_id:
        # The instance named, as the API allows (and moto requires); forced: the data is being discarded.
        params = {"Action": "DetachVolume", "VolumeId": str(found.id), "InstanceId": str(instance_id), "Force": "true"}
        pacing.call(driver, f"detach {found.id}", functools.partial(ec2_request, driver, params),
                    transient_codes=NOT_YET)
    pacing.call(driver, f"delete {found.id}", functools.partial(driver.destroy_volume, found),
                transient_codes=NOT_YET)
    return True


def ensure_volume_from_snapshot(driver: BaseEC2NodeDriver, node: Node, environment: str, hostname: str, *,
                                snapshot_id: str | None, device: str, size_gb: int, zone: str,
                                pacing: Pacing, volume_name: str | None = None, kind: VolumeKind | None = None,
                                extra_tags: Mapping[str, str] | None = None) -> StorageVolume:
    """A volume made from `snapshot_id` (None: an empty one) in `zone` (its instance's), of `kind`,
    tagged at creation for the node's hostname, device and spec volume name (what `backup` finds it
    by) beside the spec's custom tags, attached at `device`."""
    tags = {**(extra_tags or {}), ENVIRONMENT_TAG: environment, HOSTNAME_TAG: hostname, DEVICE_TAG: device,
            "Name": f"{hostname}-{device.rsplit('/', 1)[-1]}"}
    if volume_name:
        tags[VOLUME_TAG] = volume_name

    def mine() -> StorageVolume | None:
        return next((v for v in environment_volumes(driver, environment, pacing=pacing)
                     if (volume_extra(v).get("tags") or {}).get(HOSTNAME_TAG) == hostname
                     and (volume_extra(v).get("tags") or {}).get(DEVICE_TAG) == device), None)

    volume = mine()
    if volume is None:
        params = {"Action": "CreateVolume", "Size": str(size_gb), "AvailabilityZone": zone,
                  **(kind or VolumeKind()).params(), **tag_specification("volume", tags)}
        if snapshot_id:
            params["SnapshotId"] = snapshot_id
        created = pacing.call(driver, f"create volume {device} for {hostname}",
                              lambda: ec2_request(driver, params), before_retry=_unless_refused(mine))
        volume = created if isinstance(created, StorageVolume) else driver._to_volume(created, name=tags["Name"])
        volume_extra(volume)["tags"] = dict(tags)
    elif volume_name and (volume_extra(volume).get("tags") or {}).get(VOLUME_TAG) != volume_name:
        # Made before volumes carried their spec name: named now, so that `backup` finds it.
        made = volume
        pacing.call(driver, f"tag volume {made.id} as {volume_name}",
                    lambda: create_tags(driver, str(made.id), {VOLUME_TAG: volume_name}))
    if volume_extra(volume).get("instance_id") != node.id:
        pacing.call(driver, f"attach volume {volume.id} to {hostname}",
                    lambda: driver.attach_volume(node, volume, device), transient_codes=NOT_YET)
    return volume



# ---- teardown ----------------------------------------------------------------------------------


TERMINATE_BATCH = 100


def terminate_instances(driver: BaseEC2NodeDriver, nodes: list[Node], *, pacing: Pacing) -> None:
    """Terminate `nodes`, up to TERMINATE_BATCH per API call: a 500-node teardown costs 5 requests
    of the bucket, not 500. Terminating twice is harmless, so a transient failure is simply repeated."""
    ordered = sorted(nodes, key=node_id)
    for start in range(0, len(ordered), TERMINATE_BATCH):
        batch = [node_id(node) for node in ordered[start:start + TERMINATE_BATCH]]
        params = {"Action": "TerminateInstances", **driver._pathlist("InstanceId", batch)}
        pacing.call(driver, f"terminate {len(batch)} instances", functools.partial(ec2_request, driver, params))


def release_addresses(driver: BaseEC2NodeDriver, environment: str, *, pacing: Pacing) -> None:
    for address in environment_addresses(driver, environment, pacing=pacing):
        if address.instance_id:
            pacing.call(driver, f"disassociate {address.ip}",
                        functools.partial(driver.ex_disassociate_address, address, domain="vpc"))
        pacing.call(driver, f"release {address.ip}",
                    functools.partial(driver.ex_release_address, address, domain="vpc"))


def delete_volumes(driver: BaseEC2NodeDriver, environment: str, *, pacing: Pacing) -> list[str]:
    deleted = []
    for volume in environment_volumes(driver, environment, pacing=pacing):
        if volume_extra(volume).get("instance_id"):
            pacing.call(driver, f"detach {volume.id}", functools.partial(driver.detach_volume, volume, ex_force=True),
                        transient_codes=NOT_YET)
        pacing.call(driver, f"delete {volume.id}", functools.partial(driver.destroy_volume, volume),
                    transient_codes=NOT_YET)
        deleted.append(volume.id)
    return deleted


def delete_group_and_key_pair(driver: BaseEC2NodeDriver, environment: str, *, pacing: Pacing, key_file: Path) -> None:
    name = environment_resource_name(environment)
    for group in find_security_groups(driver, environment, pacing):
        pacing.call(driver, f"delete security group {name}",
                    functools.partial(driver.ex_delete_security_group_by_id, group.id), transient_codes=NOT_YET)
    key_pairs = pacing.call(driver, "list key pairs", driver.list_key_pairs)
    for key_pair in (k for k in key_pairs if k.name == name):
        pacing.call(driver, f"delete key pair {name}", functools.partial(driver.delete_key_pair, key_pair))
    key_file.unlink(missing_ok=True)
