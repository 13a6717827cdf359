"""The EC2 family (EC2 itself, and Eucalyptus, which speaks its API): nodes filtered by tag at the
cloud, the environment's key pair and security group made before the master, the master's elastic
address and every node's volumes from snapshots at launch, and a teardown of all of it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from libcloud.compute.base import Node, NodeDriver

from drbootstrap.errors import ProviderError
from drbootstrap.providers import ec2_resources as resources
from drbootstrap.providers.base import NodeAddresses, Provider, Teardown, VolumeWanted
from drbootstrap.providers.nodes import ENVIRONMENT_TAG, HOSTNAME_TAG
from drbootstrap.providers.operator_key import RSA, load_or_create_operator_key
from drbootstrap.providers.settings import RateSettings, driver_class_override, split_extra

if TYPE_CHECKING:
    from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver

# Attachment points for a node's volumes, in the spec's order (sda.. are the root's; sdf..sdp per AWS).
DEVICES = tuple(f"/dev/sd{letter}" for letter in "fghijklmnop")


class EC2Provider(Provider):
    # EC2's documented RunInstances bucket: 1000 tokens, refilled at 2 per second.
    default_rate = RateSettings(per_second=2, burst=1000)
    default_max_parallel = 50  # in flight; the bucket, not this, keeps the request rate

    own_extra_keys = frozenset({"public_key", "operator_cidr", "profile"})

    @classmethod
    def driver_family(cls, name: str) -> type[NodeDriver] | None:
        from libcloud.compute.drivers.ec2 import EC2NodeDriver

        return EC2NodeDriver

    def new_driver(self) -> NodeDriver:
        from libcloud.compute.drivers.ec2 import EC2NodeDriver

        from drbootstrap.providers.ec2_driver import build_ec2_driver

        family = driver_class_override(self.settings, EC2NodeDriver) or EC2NodeDriver
        return build_ec2_driver(self.settings, driver_class=family)

    def driver(self) -> BaseEC2NodeDriver:
        """This thread's driver: every EC2 dialect's (EC2, Eucalyptus, a driver_class subclass) is one."""
        return cast("BaseEC2NodeDriver", super().driver())

    @property
    def resource_name(self) -> str:
        return resources.environment_resource_name(self.environment)

    def list_options(self, tags: Mapping[str, str]) -> dict[str, Any]:
        return {"ex_filters": {f"tag:{key}": value for key, value in tags.items()}}

    def launch_settings(self) -> dict[str, Any]:
        return {"create_options": split_extra(type(self.driver()), dict(self.settings.extra))[1],
                "key_name": self.resource_name, "security_groups": (self.resource_name,)}

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
                                             pacing=self.pacing, replaceable=lambda: not self.nodes())
        group_id = resources.ensure_security_group(driver, self.environment, str(operator), pacing=self.pacing)
        return f"key pair {key_name}, security group {group_id}"

    def addresses(self, node: Node) -> NodeAddresses:
        private = list(node.private_ips or []) + list(node.public_ips or [])
        public = list(node.public_ips or [])
        address = private[0] if private else None
        return NodeAddresses(private=address, public=public[0] if public and public[0] != address else None)

    def provision(self, node: Node, hostname: str, *, is_master: bool, volumes: Sequence[VolumeWanted]) -> list[str]:
        """What belongs to the instance from the start (the master's address, volumes), part of launch
        so that `up --until launch` leaves the networking and storage wired."""
        driver = self.driver()
        done = []
        if is_master:
            address = resources.ensure_elastic_address(driver, node, self.environment, hostname, pacing=self.pacing)
            done.append(f"elastic address {address}")
        if len(volumes) > len(DEVICES):
            raise ProviderError(f"{hostname}: {len(volumes)} volumes, more than the {len(DEVICES)} device names",
                                hint="give the node fewer volumes")
        # libcloud's EC2 driver gives every instance its extra["availability"] zone.
        zone = self.settings.zone or cast(str, node.extra.get("availability"))
        for volume, device in zip(volumes, DEVICES, strict=False):
            made = resources.ensure_volume_from_snapshot(driver, node, self.environment, hostname,
                                                         snapshot_id=volume.snapshot, device=device,
                                                         size_gb=volume.size_gb, zone=zone, pacing=self.pacing)
            done.append(
                f"{volume.name} {made.id} at {device}" + (f" from {volume.snapshot}" if volume.snapshot else "")
            )
        return done

    def attach_volumes(self, node: Node, hostname: str, volumes: Sequence[VolumeWanted],
                       node_path: Callable[[str], str]) -> list[str]:
        """The volumes were made and attached with the instance (provision, at launch)."""
        return [f"{v.name} attached at {d} at launch (mount {v.mount})" for v, d in zip(volumes, DEVICES, strict=False)]

    def describe_resources(self) -> list[str]:
        """One line per per-environment resource the cloud holds: key pair, group, addresses, volumes."""
        driver, name = self.driver(), self.resource_name
        lines = [f"key pair {k.name}" for k in self.call("list key pairs", driver.list_key_pairs) if k.name == name]
        lines += [f"security group {g.id} ({name})"
                  for g in resources.find_security_groups(driver, self.environment, self.pacing)]
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
        resources.delete_group_and_key_pair(driver, self.environment, pacing=self.pacing,
                                            key_file=self.scope.operator_key_path)
        return result


class EucalyptusProvider(EC2Provider):
    default_rate = RateSettings(per_second=5, burst=50)
    default_max_parallel = 8

    @classmethod
    def driver_family(cls, name: str) -> type[NodeDriver] | None:
        from libcloud.compute.drivers.ec2 import EucNodeDriver

        return EucNodeDriver

    def new_driver(self) -> NodeDriver:
        from libcloud.compute.drivers.ec2 import EucNodeDriver

        from drbootstrap.providers.ec2_driver import build_eucalyptus_driver

        family = driver_class_override(self.settings, EucNodeDriver) or EucNodeDriver
        return build_eucalyptus_driver(self.settings, driver_class=family)
