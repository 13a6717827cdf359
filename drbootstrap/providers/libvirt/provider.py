"""The `libvirt` provider as the executor sees it: `provider: {name: libvirt, uri: qemu:///system}`.

Images (`provider.images`) are named as `drbootstrap images build` made them (master, worker: the
newest in its image cache), or given as a path to a qcow2 file or an image directory; sizes are
named (small, medium, large) or written `<vcpus>x<MiB>`; `provider.network` is the subnet of the
environment's isolated libvirt network (refused when it overlaps anything on the libvirt host).
Files (root overlays, seeds, console logs, volumes) live under `extra: storage_dir` (default:
libvirt's images directory); `extra: domain_type` is auto (the default: kvm where the CPU offers
hardware virtualisation, else qemu), kvm, or qemu (emulation: where KVM cannot run a 64-bit guest,
a host nested in another hypervisor). The libvirt host is this
machine: the controller reaches nodes on the network's bridge and reads their console logs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from libcloud.compute.base import Node, NodeDriver

from drbootstrap.errors import ProviderError, SpecError
from drbootstrap.providers.base import Provider
from drbootstrap.providers.nodes import ENVIRONMENT_TAG, HOSTNAME_TAG, LaunchRequest, node_tags
from drbootstrap.providers.settings import RateSettings
from drbootstrap.providers.values import NodeAddresses, Preflight, Teardown, VolumeWanted

if TYPE_CHECKING:
    from drbootstrap.providers.libvirt.driver import DrbLibvirtNodeDriver

DEFAULT_URI = "qemu:///system"
DEFAULT_STORAGE_DIR = "/var/lib/libvirt/images/drbootstrap"


class LibvirtProvider(Provider):
    default_rate = RateSettings(per_second=20, burst=40)  # its API is this machine's libvirt daemon
    default_max_parallel = 4
    own_extra_keys: ClassVar[frozenset[str]] = frozenset({"storage_dir", "domain_type"})

    @classmethod
    def driver_family(cls, name: str) -> type[NodeDriver] | None:
        from drbootstrap.providers.libvirt.driver import DrbLibvirtNodeDriver

        return DrbLibvirtNodeDriver

    @classmethod
    def accepted_extra_keys(cls, name: str) -> frozenset[str] | None:
        from drbootstrap.providers.settings import DRBOOTSTRAP_EXTRA_KEYS

        return DRBOOTSTRAP_EXTRA_KEYS | cls.own_extra_keys

    @property
    def uri(self) -> str:
        return self.settings.uri or DEFAULT_URI

    @property
    def subnet(self) -> str:
        return str(self.settings.network)

    @property
    def storage_dir(self) -> Path:
        return Path(str(self.settings.extra.get("storage_dir") or DEFAULT_STORAGE_DIR)) / self.environment

    def new_driver(self) -> NodeDriver:
        from drbootstrap.providers.libvirt.driver import DrbLibvirtNodeDriver
        from drbootstrap.providers.settings import driver_class_override

        try:
            import libvirt
        except ImportError:
            from drbootstrap.errors import PrerequisiteError

            raise PrerequisiteError("the libvirt provider needs the libvirt Python binding",
                                    hint="pip install libvirt-python (it builds against libvirt-dev)") from None
        driver_class = driver_class_override(self.settings, DrbLibvirtNodeDriver) or DrbLibvirtNodeDriver
        try:
            return driver_class(self.uri, storage_dir=self.storage_dir, subnet=self.subnet,
                                environment=self.environment,
                                domain_type=str(self.settings.extra.get("domain_type") or "auto"))
        except libvirt.libvirtError as error:
            message = (error.get_error_message() or str(error)).splitlines()[0]
            raise ProviderError(f"libvirt at {self.uri} is unreachable: {message}",
                                hint="start the libvirt daemon (libvirtd -d) or fix provider.uri") from None

    def driver(self) -> DrbLibvirtNodeDriver:
        return cast("DrbLibvirtNodeDriver", super().driver())

    # ---- before anything is made --------------------------------------------------------------

    def preflight(self, wanted: Preflight) -> dict[str, str]:
        """Images are qcow2 files by path, each one there; the subnet overlaps nothing here; the
        libvirt daemon answers. Nothing is made."""
        from drbootstrap.errors import PrerequisiteError
        from drbootstrap.providers.libvirt import network as net

        problems = [f"{where}: subnet {subnet}: the libvirt provider places nodes on its own network only"
                    for subnet, where in wanted.subnets.items()]
        problems += [f"provider.images.{logical}: the libvirt provider takes an image file's path"
                     for logical, ref in wanted.images.items() if ref.id is None]
        if problems:
            raise SpecError(problems)
        from drbootstrap.providers.libvirt.driver import image_disk, resolve_image

        resolved = {}
        for logical, ref in wanted.images.items():
            image = resolve_image(str(ref.id))
            if not image_disk(image).is_file():
                raise PrerequisiteError(f"provider.images.{logical}: image {ref.id} not found (no {image})",
                                    hint=f"build it with `drbootstrap images build {ref.id}` or give its path")
            resolved[logical] = str(image.resolve())
        driver = self.driver()  # the daemon answers (or a one-line error)
        if not self._network_exists(driver):
            others = [*net.host_subnets(net.bridge_name(self.environment)),
                      *net.libvirt_subnets(driver.connection, net.network_name(self.environment))]
            clash = net.overlaps(self.subnet, others)
            if clash:
                raise PrerequisiteError(f"provider.network {self.subnet} overlaps {clash} on this libvirt host",
                                        hint="pick a subnet nothing on this machine uses")
        return resolved

    def _network_exists(self, driver: DrbLibvirtNodeDriver) -> bool:
        from drbootstrap.providers.libvirt.network import network_name

        return network_name(self.environment) in {n.name() for n in driver.connection.listAllNetworks()}

    def prepare_environment(self) -> str:
        from drbootstrap.providers.libvirt.network import ensure_network

        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.chmod(0o711)
        self.storage_dir.parent.chmod(0o711)
        return ensure_network(self.driver().connection, self.environment, self.subnet)

    def launch_settings(self, request: LaunchRequest) -> dict[str, object]:
        options = {"ex_root_size_gb": request.root_size_gb} if request.root_size_gb else {}
        return {"create_options": {**options, **request.create_options}}

    # ---- nodes ----------------------------------------------------------------------------------

    def addresses(self, node: Node) -> NodeAddresses:
        return NodeAddresses(private=node.extra.get("address"))

    def controller_address_for_nodes(self) -> str | None:
        from drbootstrap.providers.libvirt.network import ensure_network, host_address

        ensure_network(self.driver().connection, self.environment, self.subnet)
        return host_address(self.subnet)

    def drill_isolation(self, seed: str) -> dict[str, str]:
        """A drill's environment gets its own network: a /24 nothing here uses, chosen from `seed`."""
        import hashlib
        import ipaddress

        from drbootstrap.providers.libvirt import network as net

        taken = [*net.host_subnets(""), *net.libvirt_subnets(self.driver().connection, "")]
        start = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
        for step in range(4096):
            index = (start + step) % 4096
            candidate = str(ipaddress.ip_network(f"10.{208 + index // 256}.{index % 256}.0/24"))
            if not net.overlaps(candidate, taken):
                return {"network": candidate}
        raise ProviderError("no free /24 for the drill's network in 10.208.0.0/12", hint="free a subnet there")

    # ---- volumes: attached, then formatted (once) and mounted in the node -------------------------

    def attach_volumes(self, node: Node, hostname: str, volumes: Sequence[VolumeWanted],
                       node_path: Callable[[str], str]) -> list[str]:
        from drbootstrap.providers.libvirt.volumes import mount_volumes

        done = super().attach_volumes(node, hostname, volumes, node_path)
        if volumes:
            fresh = self.get_node(str(node.id)) or node
            mount_volumes(self, fresh, hostname, volumes)
        return done

    # ---- status and teardown ----------------------------------------------------------------------

    def describe_resources(self) -> list[str]:
        from drbootstrap.providers.libvirt.network import bridge_name, network_name

        if not self._network_exists(self.driver()):
            return []
        return [f"libvirt network {network_name(self.environment)} ({self.subnet}, bridge "
                f"{bridge_name(self.environment)}, isolated)"]

    def destroy_environment(self, owned_ids: frozenset[str] = frozenset()) -> Teardown:
        """Every domain of the environment (tagged, or named drb-ENV-* from a launch cut short), its
        files, its volumes, its network and its storage directory: whatever of it exists."""
        import shutil

        from drbootstrap.providers.libvirt.network import destroy_network
        from drbootstrap.providers.volumes import destroy_named_volumes

        driver = self.driver()
        result = Teardown()
        prefix = f"drb-{self.environment}-"
        for node in self.call("list nodes", driver.list_nodes):
            tags = node_tags(node)
            if tags.get(ENVIRONMENT_TAG) == self.environment or node.id in owned_ids or node.name.startswith(prefix):
                self.call(f"destroy {node.name}", functools.partial(driver.destroy_node, node))
                result.destroyed.append(tags.get(HOSTNAME_TAG, node.name))
        result.volumes = destroy_named_volumes(self)
        network = destroy_network(driver.connection, self.environment)
        if network:
            result.resources.append(f"libvirt network {network}")
        if self.storage_dir.exists():
            shutil.rmtree(self.storage_dir, ignore_errors=True)
            result.resources.append(f"storage {self.storage_dir}")
        result.destroyed.sort()
        return result
