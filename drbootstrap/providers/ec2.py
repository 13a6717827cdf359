"""The EC2 family (EC2 itself, and Eucalyptus, which speaks its API): nodes filtered by tag at the
cloud; the spec's VPC, subnets (by id or tags, ec2_lookup.py), zones and images (by id, name or
SSM parameter, ec2_ssm.py) checked and resolved before anything is made (ec2_network.py), nodes
launched into their subnet with the environment's security group by id (made in the subnets'
VPC), their group's own one for its service ports (ec2_group_access.py) and its create_node
options, trying its fallback sizes when a size has no capacity; the environment's key pair and
security group made before the master, custom tags on everything, the master's (and a group's)
elastic addresses and every node's volumes from snapshots at launch, a teardown of all of it
(never of the backups). The backups, tagged snapshots of the volumes, are ec2_backups.py's."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from libcloud.compute.base import Node, NodeDriver, NodeLocation

from drbootstrap.backups.catalog import VOLUME_TAG
from drbootstrap.errors import ProviderError, SpecError
from drbootstrap.providers import ec2_group_access as access
from drbootstrap.providers import ec2_instance_storage as instance_storage
from drbootstrap.providers import ec2_lookup as lookup
from drbootstrap.providers import ec2_network as network
from drbootstrap.providers import ec2_resources as resources
from drbootstrap.providers.ec2_backups import EC2Backups
from drbootstrap.providers.nodes import ENVIRONMENT_TAG, HOSTNAME_TAG, LaunchRequest
from drbootstrap.providers.operator_key import RSA, load_or_create_operator_key
from drbootstrap.providers.settings import RateSettings, accepted_parameters, driver_class_override, split_extra
from drbootstrap.providers.values import ImageRef, NodeAddresses, Preflight, Teardown, VolumeWanted

if TYPE_CHECKING:
    from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver

# Attachment points for a node's volumes, in the spec's order (sda.. are the root's; sdf..sdp per AWS).
DEVICES = tuple(f"/dev/sd{letter}" for letter in "fghijklmnop")


# create_node arguments drbootstrap sets itself: a group's `extra` may not name them.
OWN_OPTIONS = frozenset({"name", "size", "image", "location", "auth", "ex_keyname", "ex_userdata", "ex_metadata",
                         "ex_clienttoken", "ex_mincount", "ex_maxcount", "ex_subnet", "ex_security_groups",
                         "ex_securitygroup", "ex_security_group_ids", "ex_blockdevicemappings"})
OWN_TAG_PREFIX = "drbootstrap:"


def volume_kind(volume: VolumeWanted) -> instance_storage.VolumeKind:
    return instance_storage.VolumeKind(type=volume.type, iops=volume.iops, throughput=volume.throughput,
                                encrypted=volume.encrypted, kms_key=volume.kms_key)


class EC2Provider(EC2Backups):
    # EC2's documented RunInstances bucket: 1000 tokens, refilled at 2 per second.
    default_rate = RateSettings(per_second=2, burst=1000)
    default_max_parallel = 50  # in flight; the bucket, not this, keeps the request rate
    no_capacity_codes = ("InsufficientInstanceCapacity", "Unsupported")
    # Images may be named by SSM parameter (ec2_ssm.py): AWS's, not Eucalyptus's.
    ssm_parameters: ClassVar[bool] = True

    own_extra_keys = frozenset({"public_key", "operator_cidr", "profile", "credential_chain", "ssm_endpoint"})

    @classmethod
    def driver_family(cls, name: str) -> type[NodeDriver] | None:
        from libcloud.compute.drivers.ec2 import EC2NodeDriver

        return EC2NodeDriver

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._network: network.Network | None = None  # checked by the master's launch's preflight
        self._group_id: str | None = None
        self._root_devices: dict[str, str] = {}  # image id -> its root device name
        self._images: dict[ImageRef, network.Image] = {}  # resolved once per run
        self._port_groups: dict[str, str] = {}  # role -> its own security group (service ports)
        self._port_groups_lock = threading.Lock()

    def new_driver(self) -> NodeDriver:
        from libcloud.compute.drivers.ec2 import EC2NodeDriver

        from drbootstrap.providers.ec2_driver import build_ec2_driver

        family = driver_class_override(self.settings, EC2NodeDriver) or EC2NodeDriver
        return build_ec2_driver(self.settings, driver_class=family)

    @property
    def resource_name(self) -> str:
        return resources.environment_resource_name(self.environment)

    def list_options(self, tags: Mapping[str, str]) -> dict[str, Any]:
        return {"ex_filters": {f"tag:{key}": value for key, value in tags.items()}}

    def preflight(self, wanted: Preflight) -> dict[str, str]:
        """Subnets, zones, VPC and group options checked and images resolved before anything is
        created (one line per problem, together); logical image -> image id."""
        driver = self.driver()
        legacy_subnet = self.settings.extra.get("ex_subnet")
        if legacy_subnet and wanted.unplaced:  # extra.ex_subnet: every node without a placement goes there
            wanted = dataclasses.replace(wanted, unplaced=(),
                                         subnets={**wanted.subnets, str(legacy_subnet): "provider.extra.ex_subnet"})
        accepted = accepted_parameters(type(driver).create_node) or set()
        problems = [f"{where}: {key} is set by drbootstrap itself (key pair, groups, subnet, tags, block devices)"
                    if key in OWN_OPTIONS else f"{where}: {key} is not an argument of EC2's create_node "
                    "(see examples/README.md)"
                    for where, options in wanted.create_options.items() for key in options
                    if key not in accepted or key in OWN_OPTIONS]
        if problems:
            raise SpecError(problems)
        if wanted.subnets or wanted.zones or wanted.unplaced:  # the master's launch: the whole spec
            self._network = network.check_network(driver, wanted, vpc=self.settings.vpc, pacing=self.pacing)
        with self._lock:
            known = {logical: self._images[ref] for logical, ref in wanted.images.items() if ref in self._images}
        images = {**known, **network.resolve_images(
            driver, {logical: ref for logical, ref in wanted.images.items() if logical not in known}, self.pacing,
            parameters=self._read_parameters if self.ssm_parameters else None)}
        with self._lock:
            self._images.update({wanted.images[logical]: image for logical, image in images.items()})
            self._root_devices.update({image.id: image.root_device for image in images.values() if image.root_device})
        return {logical: image.id for logical, image in images.items()}

    def _read_parameters(self, names: list[str]) -> dict[str, str | None]:
        """SSM parameter name -> the value it holds, in the driver's region (None: no such parameter)."""
        from drbootstrap.providers.ec2_ssm import read_parameters

        found = read_parameters(self.settings, self.driver().region_name, names)
        return {name: value.value for name, value in found.items()}

    def launch_settings(self, request: LaunchRequest) -> dict[str, Any]:
        """Key pair; the subnet (an object, as libcloud wants it; a tag lookup's as found) with the
        security group and the group's own one for its ports by id, or the default VPC's groups by
        name; the root volume's size; the group's create options."""
        from libcloud.compute.drivers.ec2 import EC2NetworkSubnet

        options = split_extra(type(self.driver()), dict(self.settings.extra))[1]
        extra_groups = options.pop("ex_security_group_ids", None)
        subnet = request.subnet or options.pop("ex_subnet", None)
        options.pop("ex_subnet", None)
        if subnet:
            known = self._network.subnet_ids if self._network else {}
            subnet = lookup.launch_subnet(self.driver(), str(subnet), vpc=self.settings.vpc, known=known,
                                          pacing=self.pacing)
        options.update(request.create_options)
        settings: dict[str, Any] = {"key_name": self.resource_name, "security_groups": ()}
        ports = [self._group_ports_id(request)] if request.service_ports else []
        if subnet:
            yours = extra_groups if isinstance(extra_groups, list | tuple) else [extra_groups] if extra_groups else []
            groups = [self._security_group_id(), *ports, *(str(group) for group in yours)]
            options.update(ex_subnet=EC2NetworkSubnet(str(subnet), str(subnet), "available"),
                           ex_security_group_ids=groups)
            settings["zone"] = None  # the subnet's zone
        else:
            settings["security_groups"] = (self.resource_name,) + (
                (access.group_resource_name(self.environment, request.role),) if ports else ())
        if request.root_size_gb:
            options["ex_blockdevicemappings"] = [{"DeviceName": self._root_device(request.image_id),
                                                  "Ebs": {"VolumeSize": request.root_size_gb,
                                                          "DeleteOnTermination": "true"}}]
        return {**settings, "create_options": options}

    def _security_group_id(self) -> str:
        with self._lock:
            if self._group_id is None:
                groups = resources.find_security_groups(self.driver(), self.environment, self.pacing)
                if not groups:
                    raise ProviderError(f"security group {self.resource_name} not found",
                                        hint="the master's launch makes it: run `drbootstrap up` again")
                self._group_id = str(groups[0].id)
            return self._group_id

    def _group_ports_id(self, request: LaunchRequest) -> str:
        """The group's own security group with its service ports (made at its first node's launch,
        in the environment's VPC: the preflight's, or on a resumed run the environment group's)."""
        with self._port_groups_lock:  # the group's nodes launch together: one makes it, the others wait
            known = self._port_groups.get(request.role)
            if known is None:
                vpc = self._network.vpc_id if self._network else next(
                    (g["vpc"] for g in access.describe_groups(self.driver(), {"group-id": self._security_group_id()},
                                                             self.pacing)), None)
                known = access.ensure_group_ports(self.driver(), self.environment, request.role,
                                                  request.service_ports, vpc_id=vpc or None, pacing=self.pacing,
                                                  tags={**self.settings.tags, **request.extra_tags})
                self._port_groups[request.role] = known
            return known

    def size_of(self, node: Node) -> str | None:
        size = node.extra.get("instance_type")
        return str(size) if size else None

    def _root_device(self, image_id: str) -> str:
        with self._lock:
            known = self._root_devices.get(image_id)
        if known is None:
            found = network.describe_images(self.driver(), ImageRef(id=image_id), self.pacing)
            known = next((i.root_device for i in found if i.root_device), None) or "/dev/sda1"
            with self._lock:
                self._root_devices[image_id] = known
        return known

    def _custom_tags(self, node: Node) -> dict[str, str]:
        """The spec's and the group's custom tags, as the instance carries them."""
        tags = node.extra.get("tags") or {}
        return {str(k): str(v) for k, v in tags.items()
                if not str(k).startswith(OWN_TAG_PREFIX) and k != "Name"} or dict(self.settings.tags)

    def operator_public_key(self) -> str:
        given = str(self.settings.extra.get("public_key") or "")
        # RSA: every EC2 dialect imports it. Written 0600 before the cloud sees its public half.
        return given or load_or_create_operator_key(self.scope.operator_key_path, RSA)

    def prepare_environment(self) -> str:
        """The key pair (the operator key made here, then imported) and the security group with
        exactly the recipe's ports. Idempotent."""
        operator = self.settings.extra.get("operator_cidr")
        if not operator:
            raise ProviderError(f"provider {self.settings.name}: no operator_cidr, so the security group cannot say "
                                "who may reach the master's DNS, broker, Puppet CA and SSH",
                                hint="set provider.extra.operator_cidr to this controller's public address, "
                                     "e.g. 203.0.113.7/32")
        driver = self.driver()
        key_name = resources.ensure_key_pair(driver, self.environment, self.operator_public_key(),
                                             pacing=self.pacing, replaceable=lambda: not self.nodes(),
                                             tags=self.settings.tags)
        vpc_id = self._network.vpc_id if self._network else None
        group_id = resources.ensure_security_group(driver, self.environment, str(operator), vpc_id=vpc_id,
                                                   pacing=self.pacing, tags=self.settings.tags)
        with self._lock:
            self._group_id = group_id
        return f"key pair {key_name}, security group {group_id}" + (f" in {vpc_id}" if vpc_id else "")

    def addresses(self, node: Node) -> NodeAddresses:
        private = list(node.private_ips or []) + list(node.public_ips or [])
        public = list(node.public_ips or [])
        address = private[0] if private else None
        return NodeAddresses(private=address, public=public[0] if public and public[0] != address else None)

    def move_elastic_address(self, hostname: str, to: Node) -> str | None:
        return resources.move_elastic_address(self.driver(), self.environment, hostname, to, pacing=self.pacing)

    def provision(self, node: Node, hostname: str, *, is_master: bool, volumes: Sequence[VolumeWanted],
                  elastic_address: bool = False) -> list[str]:
        """What belongs to the instance from the start (the master's address, or a node's whose group
        asks for one; volumes), part of launch so that `up --until launch` leaves the networking and
        storage wired."""
        driver = self.driver()
        done = []
        if is_master or elastic_address:
            address = resources.ensure_elastic_address(driver, node, self.environment, hostname, pacing=self.pacing,
                                                       extra_tags=self._custom_tags(node))
            done.append(f"elastic address {address}")
        if len(volumes) > len(DEVICES):
            raise ProviderError(f"{hostname}: {len(volumes)} volumes, more than the {len(DEVICES)} device names",
                                hint="give the node fewer volumes")
        custom = self._custom_tags(node)
        if custom:  # RunInstances tagged the instance only: its root volume gets the custom tags too
            done += instance_storage.tag_root_volumes(driver, node, custom, pacing=self.pacing)
        zone = self._zone(node)
        for volume, device in zip(volumes, DEVICES, strict=False):
            made = resources.ensure_volume_from_snapshot(driver, node, self.environment, hostname,
                                                         snapshot_id=volume.snapshot, device=device,
                                                         size_gb=volume.size_gb, zone=zone, pacing=self.pacing,
                                                         volume_name=volume.name, kind=volume_kind(volume),
                                                         extra_tags=self._custom_tags(node))
            done.append(
                f"{volume.name} {made.id} at {device}" + (f" from {volume.snapshot}" if volume.snapshot else "")
            )
        return done

    def attach_volumes(self, node: Node, hostname: str, volumes: Sequence[VolumeWanted],
                       node_path: Callable[[str], str]) -> list[str]:
        """The volumes were made and attached with the instance (provision, at launch). One missing
        since (discarded: a restore that failed verification made way for an older backup) is made
        again from its snapshot, at the device it left free."""
        driver = self.driver()
        present = [resources.volume_extra(v).get("tags") or {}
                   for v in resources.node_volumes(driver, self.environment, hostname, pacing=self.pacing)]
        used = {tags.get(resources.DEVICE_TAG) for tags in present}
        done = []
        for index, volume in enumerate(volumes):
            device = next((t.get(resources.DEVICE_TAG) for t in present if t.get(VOLUME_TAG) == volume.name), None)
            if device is None and index < len(DEVICES):  # made before volumes carried their name: by position
                device = next((t.get(resources.DEVICE_TAG) for t in present
                               if VOLUME_TAG not in t and t.get(resources.DEVICE_TAG) == DEVICES[index]), None)
            if device is not None:
                done.append(f"{volume.name} attached at {device} at launch (mount {volume.mount})")
                continue
            device = next((d for d in DEVICES if d not in used), None)
            if device is None:
                raise ProviderError(f"{hostname}: no device name left for volume {volume.name}",
                                    hint="give the node fewer volumes")
            used.add(device)
            made = resources.ensure_volume_from_snapshot(driver, node, self.environment, hostname,
                                                         snapshot_id=volume.snapshot, device=device,
                                                         size_gb=volume.size_gb, zone=self._zone(node),
                                                         pacing=self.pacing, volume_name=volume.name,
                                                         kind=volume_kind(volume), extra_tags=self._custom_tags(node))
            done.append(f"{volume.name} {made.id} at {device}" + (f" from {volume.snapshot}" if volume.snapshot else "")
                        + f" (mount {volume.mount})")
        return done

    def discard_volume(self, node: Node, hostname: str, volume: str) -> bool:
        """Detach and delete the node's volume `volume` (a restore that failed verification makes
        way for an older backup: attach_volumes then makes it again); False when it has none."""
        return resources.discard_volume(self.driver(), self.environment, hostname, volume, pacing=self.pacing)

    def _zone(self, node: Node) -> str:
        # libcloud's EC2 driver gives every instance its extra["availability"] zone: a volume goes there.
        return cast(str, node.extra.get("availability") or self.settings.zone)

    def describe_resources(self) -> list[str]:
        """One line per per-environment resource the cloud holds: key pair, group, addresses, volumes."""
        driver, name = self.driver(), self.resource_name
        lines = [f"key pair {k.name}" for k in self.call("list key pairs", driver.list_key_pairs) if k.name == name]
        lines += [f"security group {g.id} ({name})"
                  for g in resources.find_security_groups(driver, self.environment, self.pacing)]
        lines += [f"security group {g['id']} ({g['name']})"
                  for g in access.group_port_groups(driver, self.environment, self.pacing)]
        for address in resources.environment_addresses(driver, self.environment, pacing=self.pacing):
            lines.append(f"address {address.ip} -> {address.instance_id or 'not associated'}")
        for volume in resources.environment_volumes(driver, self.environment, pacing=self.pacing):
            tags = resources.volume_extra(volume).get("tags") or {}
            lines.append(f"volume {volume.id} {tags.get(HOSTNAME_TAG, '?')}:{tags.get(resources.DEVICE_TAG, '?')}")
        return lines

    def destroy_environment(self, owned_ids: frozenset[str] = frozenset()) -> Teardown:
        """Release the addresses, terminate the nodes, delete volumes, group, key pair and key file."""
        driver = self.driver()
        result = Teardown(resources=self.describe_resources())
        resources.release_addresses(driver, self.environment, pacing=self.pacing)
        nodes = self._tagged({ENVIRONMENT_TAG: self.environment})
        resources.terminate_instances(driver, nodes, pacing=self.pacing)
        result.destroyed = sorted(n.extra.get("tags", {}).get(HOSTNAME_TAG, n.id) for n in nodes)
        result.volumes = resources.delete_volumes(driver, self.environment, pacing=self.pacing)
        access.delete_group_port_groups(driver, self.environment, pacing=self.pacing)
        resources.delete_group_and_key_pair(driver, self.environment, pacing=self.pacing,
                                            key_file=self.scope.operator_key_path)
        return result


class EucalyptusProvider(EC2Provider):
    default_rate = RateSettings(per_second=5, burst=50)
    default_max_parallel = 8
    # Eucalyptus's EC2 API predates tags in create requests.
    snapshot_tags_at_creation = False
    ssm_parameters = False

    @classmethod
    def driver_family(cls, name: str) -> type[NodeDriver] | None:
        from libcloud.compute.drivers.ec2 import EucNodeDriver

        return EucNodeDriver

    def new_driver(self) -> NodeDriver:
        from libcloud.compute.drivers.ec2 import EucNodeDriver

        from drbootstrap.providers.ec2_driver import build_eucalyptus_driver

        family = driver_class_override(self.settings, EucNodeDriver) or EucNodeDriver
        return build_eucalyptus_driver(self.settings, driver_class=family)

    def _location(self, zone: str) -> NodeLocation:
        """The zone as EC2's create_node takes it: libcloud's Eucalyptus driver lists no locations
        (its list_locations is not implemented), so the zone, checked by the preflight against
        DescribeAvailabilityZones, is named directly."""
        from libcloud.compute.drivers.ec2 import EC2NodeLocation, ExEC2AvailabilityZone

        driver = self.driver()
        available = ExEC2AvailabilityZone(name=zone, zone_state="available", region_name=driver.region_name)
        return EC2NodeLocation(id=zone, name=zone, country="", availability_zone=available, driver=driver)

    @property
    def backup_location(self) -> str:
        return f"ec2:{self.settings.endpoint or 'eucalyptus'}"

    def driver_for_region(self, region: str) -> BaseEC2NodeDriver:
        raise ProviderError(f"provider {self.settings.name}: a Eucalyptus cloud has no other region to copy to",
                            hint="copy backups between regions on EC2")
