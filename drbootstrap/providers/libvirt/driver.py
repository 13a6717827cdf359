"""libcloud's LibvirtNodeDriver with what drbootstrap needs added (a subclass, not a fork): nodes
created from an image (a qcow2 overlay backed by it, a NoCloud seed ISO, a serial console log file,
a static address on the environment's network), tags and addresses read from each domain's
metadata (not from the host's ARP table), node ids that are domain UUIDs (a stopped domain keeps
its id), destroy that removes the domain's files too, volumes as virtio qcow2 disks, console output."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libcloud.compute.base import Node, NodeImage, NodeSize, StorageVolume
from libcloud.compute.drivers.libvirt_driver import LibvirtNodeDriver
from libcloud.compute.types import NodeState, StorageVolumeState

from drbootstrap.errors import PrerequisiteError, ProviderError
from drbootstrap.images.build import default_cache_dir
from drbootstrap.providers.libvirt import network as net
from drbootstrap.providers.libvirt.seed import seed_for, write_seed_iso
from drbootstrap.providers.libvirt.xml import DomainFacts, DomainPlan, disk_xml, domain_facts, domain_xml, mac_for
from drbootstrap.providers.nodes import ENVIRONMENT_TAG, HOSTNAME_TAG

# Launches in other threads of this process take addresses too: one at a time, until defined.
_ADDRESS_LOCK = threading.Lock()
VOLUME_TARGETS = [f"vd{letter}" for letter in "bcdefghijklmnopqrstuvwxyz"]
KERNEL_CMDLINE = "root=/dev/vda rw console=ttyS0,115200n8 net.ifnames=0"
DOMAIN_TYPES = ("auto", "kvm", "qemu")


def hardware_virtualisation() -> bool:
    """Whether KVM can run a 64-bit guest here: /dev/kvm and the CPU's own extensions (vmx, svm).
    A host that is itself a VM without nested virtualisation may still offer /dev/kvm (a
    paravirtual KVM that needs a guest kernel of its own): Debian's kernel hangs there."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return Path("/dev/kvm").exists() and any(f" {flag}" in flags for flag in ("vmx", "svm"))


@dataclass(frozen=True)
class Size:
    """A size: vCPUs, memory, root disk. Named (SIZES) or written `<vcpus>x<MiB>[x<GiB disk>]`."""

    vcpus: int
    memory_mib: int
    disk_gb: int = 8


SIZES = {
    "small": Size(1, 1024, 6),     # a worker: its agent and a Puppet run
    "medium": Size(2, 2560, 8),    # the master: puppetserver and ActiveMQ (two JVMs), dnsmasq
    "large": Size(2, 4096, 12),
}


def parse_size(size_id: str) -> Size:
    if size_id in SIZES:
        return SIZES[size_id]
    parts = size_id.split("x")
    if 2 <= len(parts) <= 3 and all(p.isdigit() and int(p) > 0 for p in parts):
        return Size(*(int(p) for p in parts))
    raise ProviderError(f"size {size_id!r} is not a libvirt size",
                        hint=f"use one of {', '.join(SIZES)} or <vcpus>x<MiB>[x<disk GiB>], e.g. 2x3072")


def volume_serial(name: str) -> str:
    """The disk serial a volume shows in its node (virtio keeps 20 characters)."""
    import hashlib

    return "drb" + hashlib.sha256(name.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BootFiles:
    """Direct kernel boot of an image without a boot loader: kernel, initrd and command line."""

    kernel: str | None = None
    initrd: str | None = None
    cmdline: str = KERNEL_CMDLINE


def resolve_image(image_id: str, cache: Path | None = None) -> Path:
    """A spec's image: a path to a qcow2 file or an image directory, else the name of an image
    `drbootstrap images build` made (its newest NAME-DIGEST directory in the image cache)."""
    if "/" in image_id or image_id.endswith(".qcow2"):
        return Path(image_id)
    cache = cache or default_cache_dir()
    built = sorted((entry for entry in cache.glob(f"{image_id}-*") if (entry / "manifest.json").is_file()),
                   key=lambda entry: (entry / "manifest.json").stat().st_mtime) if cache.is_dir() else []
    return built[-1] if built else cache / image_id


def image_disk(image: Path) -> Path:
    """The qcow2 disk of an image given as the disk itself or as its directory (manifest.json's `disk`)."""
    manifest = image / "manifest.json"
    if image.is_dir() and manifest.is_file():
        return image / str(json.loads(manifest.read_text()).get("disk", "disk.qcow2"))
    return image


def boot_files(image: Path) -> BootFiles:
    """How an image without a boot loader boots: `kernel`, `initrd` and `cmdline` of the
    manifest.json beside its disk (what `drbootstrap images build` writes), else IMAGE.vmlinuz,
    IMAGE.initrd and IMAGE.cmdline beside it; neither: the image boots from its disk."""
    disk = image_disk(image)
    manifest = disk.parent / "manifest.json"
    if manifest.is_file():
        facts = json.loads(manifest.read_text())
        if facts.get("kernel"):
            kernel, initrd = disk.parent / str(facts["kernel"]), facts.get("initrd")
            return _with_console(str(kernel), str(disk.parent / initrd) if initrd else None,
                                 str(facts.get("cmdline") or KERNEL_CMDLINE))
    stem = disk.with_suffix("")
    kernel, initrd, cmdline = (Path(f"{stem}.{suffix}") for suffix in ("vmlinuz", "initrd", "cmdline"))
    if not kernel.is_file():
        return BootFiles()
    line = cmdline.read_text().strip() if cmdline.is_file() else KERNEL_CMDLINE
    return _with_console(str(kernel), str(initrd) if initrd.is_file() else None, line)


def _with_console(kernel: str, initrd: str | None, cmdline: str) -> BootFiles:
    if "console=ttyS0" not in cmdline:
        cmdline += " console=ttyS0,115200n8"  # the console log is the serial port
    return BootFiles(kernel, initrd, cmdline)


class DrbLibvirtNodeDriver(LibvirtNodeDriver):
    """One libvirt host for one environment: its files under `storage_dir`, its nodes on `subnet`."""

    name = "libvirt"
    # libvirt's domain states (virDomainState): shut off is STOPPED, not gone (its id stays)
    DOMAIN_STATES = {0: NodeState.UNKNOWN, 1: NodeState.RUNNING, 2: NodeState.RUNNING, 3: NodeState.SUSPENDED,
                      4: NodeState.STOPPING, 5: NodeState.STOPPED, 6: NodeState.ERROR, 7: NodeState.SUSPENDED}

    connection: Any  # a libvirt.virConnect

    def __init__(self, uri: str, storage_dir: str | Path, subnet: str, environment: str,
                 domain_type: str = "auto") -> None:
        import libvirt

        libvirt.registerErrorHandler(lambda *_: None, None)  # errors are raised; not printed on stderr too
        if domain_type not in DOMAIN_TYPES:
            raise ProviderError(f"provider.extra.domain_type {domain_type!r} is not one of {', '.join(DOMAIN_TYPES)}",
                                hint="auto (kvm where the CPU offers it), kvm, or qemu (emulation)")
        super().__init__(uri)
        if domain_type == "auto":
            domain_type = "kvm" if hardware_virtualisation() else "qemu"
        self.storage_dir, self.subnet, self.environment = Path(storage_dir), subnet, environment
        self.domain_type = domain_type

    # ---- nodes -----------------------------------------------------------------------------------

    def domain_name(self, hostname: str) -> str:
        return f"drb-{self.environment}-{hostname}"

    def node_dir(self, domain_name: str) -> Path:
        return self.storage_dir / domain_name

    def list_nodes(self) -> list[Node]:
        """Every domain of the host as a node; one destroyed while it is read (another environment's
        teardown) is left out, not an error."""
        import libvirt

        nodes = []
        for domain in self.connection.listAllDomains():
            try:
                nodes.append(self._to_node(domain))
            except libvirt.libvirtError as error:
                if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        return nodes

    def _to_node(self, domain: Any) -> Node:
        state = domain.info()[0]
        facts = domain_facts(domain.XMLDesc(0))
        extra = {"uuid": domain.UUIDString(), "tags": facts.tags, "address": facts.address,
                 "console_log": facts.console_log, "disks": facts.disks, "seed_iso": facts.seed_iso}
        node = Node(id=domain.UUIDString(), name=domain.name(),
                    state=self.DOMAIN_STATES.get(state, NodeState.UNKNOWN), public_ips=[],
                    private_ips=[facts.address] if facts.address else [], driver=self, extra=extra)
        node._uuid = domain.UUIDString()
        return node

    def create_node(self, name: str, size: NodeSize, image: NodeImage, location: Any = None, auth: Any = None,
                    ex_metadata: dict[str, str] | None = None, ex_userdata: str | None = None,
                    ex_root_size_gb: int | None = None) -> Node:
        """A domain named drb-ENV-NAME from the qcow2 image at `image.id`, tagged with `ex_metadata`,
        booted with `ex_userdata` through its NoCloud seed; started."""
        import libvirt

        tags = dict(ex_metadata or {})
        hostname = tags.get(HOSTNAME_TAG, name)
        spec = parse_size(str(size.id))
        source = image_disk(resolve_image(str(image.id)))
        if not source.is_file():
            raise PrerequisiteError(f"image {source} does not exist",
                                hint="build it (drbootstrap images build) or fix provider.images")
        domain_name = self.domain_name(hostname)
        files = self.node_dir(domain_name)
        files.mkdir(parents=True, exist_ok=True)
        files.chmod(0o711)
        root, seed_iso, console = files / "root.qcow2", files / "seed.iso", files / "console.log"
        mac = mac_for(self.environment, hostname)
        with _ADDRESS_LOCK:
            ours = f"drb-{self.environment}-"
            taken = [n.extra.get("address") for n in self.list_nodes() if n.name.startswith(ours)]
            address = net.free_address(self.subnet, [a for a in taken if a])
            disk_gb = max(spec.disk_gb, ex_root_size_gb or 0)
            _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(source.resolve()), str(root),
                  f"{disk_gb}G"], f"create the root disk of {hostname}")
            write_seed_iso(seed_for(f"{domain_name}-{tags.get('drbootstrap:generation', '1')}", hostname, mac,
                                    address, self.subnet, ex_userdata or ""), seed_iso)
            console.touch()
            boot = boot_files(source)
            plan = DomainPlan(name=domain_name, memory_mib=spec.memory_mib, vcpus=spec.vcpus, root_disk=str(root),
                              seed_iso=str(seed_iso), console_log=str(console),
                              network=net.network_name(self.environment), mac=mac, address=address, tags=tags,
                              kernel=boot.kernel, initrd=boot.initrd, cmdline=boot.cmdline,
                              domain_type=self.domain_type)
            domain = self.connection.defineXML(domain_xml(plan))
        try:
            domain.create()
        except libvirt.libvirtError as error:
            self._remove_domain(domain)
            shutil.rmtree(files, ignore_errors=True)
            raise ProviderError(f"libvirt could not start {domain_name}: {error.get_error_message()}",
                                hint="see the libvirt daemon's log for the domain") from None
        return self._to_node(domain)

    def destroy_node(self, node: Node) -> bool:
        """Stop and undefine the domain, then remove its root disk, seed and console log (not its volumes)."""
        import libvirt

        try:
            domain = self.connection.lookupByUUIDString(node.extra.get("uuid") or node.id)
        except libvirt.libvirtError:
            return True  # gone already
        self._remove_domain(domain)
        shutil.rmtree(self.node_dir(node.name), ignore_errors=True)
        return True

    def _remove_domain(self, domain: Any) -> None:
        import libvirt

        try:
            if domain.isActive():
                domain.destroy()
        except libvirt.libvirtError:
            pass  # stopped meanwhile
        domain.undefineFlags(getattr(libvirt, "VIR_DOMAIN_UNDEFINE_NVRAM", 4))

    def ex_get_console_output(self, node: Node) -> dict[str, str]:
        path = node.extra.get("console_log")
        if not path or not Path(path).is_file():
            raise ProviderError(f"node {node.name} has no console log yet", hint="wait for it to boot, then retry")
        return {"output": Path(path).read_text(errors="replace")}

    # ---- volumes: qcow2 files attached as virtio disks --------------------------------------------

    @property
    def volumes_dir(self) -> Path:
        return self.storage_dir / "volumes"

    def list_volumes(self) -> list[StorageVolume]:
        attached = {disk: node for node in self.list_nodes() for disk in node.extra["disks"].values()}
        volumes = []
        for path in sorted(self.volumes_dir.glob("*.qcow2")) if self.volumes_dir.is_dir() else []:
            node = attached.get(str(path))
            volumes.append(StorageVolume(
                id=str(path), name=path.stem, size=_virtual_size_gb(path), driver=self,
                state=StorageVolumeState.INUSE if node else StorageVolumeState.AVAILABLE,
                extra={"node_id": node.id if node else None, "serial": volume_serial(path.stem)}))
        return volumes

    def create_volume(self, size: int, name: str, location: Any = None, snapshot: Any = None) -> StorageVolume:
        if snapshot is not None:
            raise ProviderError(f"volume {name}: the libvirt provider makes volumes empty, not from snapshots",
                                hint="drop the volume's `snapshot:` on this provider")
        self.volumes_dir.mkdir(parents=True, exist_ok=True)
        self.volumes_dir.chmod(0o711)
        path = self.volumes_dir / f"{name}.qcow2"
        _run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{size}G"], f"create volume {name}")
        return StorageVolume(id=str(path), name=name, size=size, driver=self, state=StorageVolumeState.AVAILABLE,
                             extra={"node_id": None, "serial": volume_serial(name)})

    def attach_volume(self, node: Node, volume: StorageVolume, device: str | None = None) -> bool:
        """Attach as the next free virtio disk (vdb, vdc, ...); `device` (where the node mounts it) is the
        provider's business, the node finds the disk by its serial."""
        domain = self.connection.lookupByUUIDString(node.id)
        used = set(domain_facts(domain.XMLDesc(0)).disks)
        target = next((t for t in VOLUME_TARGETS if t not in used), None)
        if target is None:
            raise ProviderError(f"{node.name} has no free disk slot for {volume.name}", hint="give it fewer volumes")
        domain.attachDeviceFlags(disk_xml(str(volume.id), target, serial=volume_serial(volume.name)),
                                 _device_flags(domain))
        return True

    def detach_volume(self, volume: StorageVolume, ex_force: bool = False) -> bool:
        for node in self.list_nodes():
            for target, path in node.extra["disks"].items():
                if path == str(volume.id):
                    domain = self.connection.lookupByUUIDString(node.id)
                    domain.detachDeviceFlags(disk_xml(path, target, serial=volume_serial(volume.name)),
                                             _device_flags(domain))
        return True

    def destroy_volume(self, volume: StorageVolume) -> bool:
        self.detach_volume(volume)
        Path(str(volume.id)).unlink(missing_ok=True)
        return True


def _device_flags(domain: Any) -> int:
    import libvirt

    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    return flags | libvirt.VIR_DOMAIN_AFFECT_LIVE if domain.isActive() else flags


def _virtual_size_gb(path: Path) -> int:
    done = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)], capture_output=True, text=True,
                          timeout=30, check=False)
    return int(json.loads(done.stdout).get("virtual-size", 0)) // 2**30 if done.returncode == 0 else 0


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProviderError(f"could not {what}: {last}", hint=f"check {command[0]} and free space")


def facts_of(node: Node) -> DomainFacts:
    return DomainFacts(tags=dict(node.extra.get("tags") or {}), address=node.extra.get("address"),
                       disks=dict(node.extra.get("disks") or {}), console_log=node.extra.get("console_log"),
                       seed_iso=node.extra.get("seed_iso"))


__all__ = ["DrbLibvirtNodeDriver", "ENVIRONMENT_TAG", "SIZES", "parse_size"]
