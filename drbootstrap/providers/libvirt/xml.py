"""The libvirt XML the libvirt provider writes (domains, disks, its isolated network) and reads back
(a domain's tags, address, disks). Pure functions: no connection to libvirt here."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

METADATA_NS = "https://drbootstrap.invalid/libvirt/node"  # our element in a domain's <metadata>
METADATA_KEY = "drb"


@dataclass(frozen=True)
class DomainPlan:
    """One domain to define: its name, its size, its disks and files, its place on the network."""

    name: str
    memory_mib: int
    vcpus: int
    root_disk: str  # the qcow2 overlay on the image
    seed_iso: str
    console_log: str
    network: str  # the libvirt network's name
    mac: str
    address: str
    tags: Mapping[str, str] = field(default_factory=dict)
    kernel: str | None = None  # direct kernel boot (an image without a boot loader)
    initrd: str | None = None
    cmdline: str = ""
    domain_type: str = "kvm"  # or "qemu": TCG, where KVM cannot run a 64-bit guest (a nested host)


def mac_for(environment: str, hostname: str) -> str:
    """A stable MAC in QEMU's locally administered range for a node of an environment."""
    digest = hashlib.sha256(f"{environment}\0{hostname}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def domain_xml(plan: DomainPlan) -> str:
    domain = ET.Element("domain", type=plan.domain_type)
    ET.SubElement(domain, "name").text = plan.name
    metadata = ET.SubElement(ET.SubElement(domain, "metadata"), f"{{{METADATA_NS}}}node", address=plan.address)
    for key, value in sorted(plan.tags.items()):
        ET.SubElement(metadata, f"{{{METADATA_NS}}}tag", key=key, value=value)
    ET.SubElement(domain, "memory", unit="MiB").text = str(plan.memory_mib)
    ET.SubElement(domain, "vcpu").text = str(plan.vcpus)
    os_element = ET.SubElement(domain, "os")
    ET.SubElement(os_element, "type", arch="x86_64", machine="q35").text = "hvm"
    if plan.kernel:
        ET.SubElement(os_element, "kernel").text = plan.kernel
        if plan.initrd:
            ET.SubElement(os_element, "initrd").text = plan.initrd
        ET.SubElement(os_element, "cmdline").text = plan.cmdline
    else:
        ET.SubElement(os_element, "boot", dev="hd")
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    ET.SubElement(domain, "cpu", mode="custom", match="exact", check="none").append(_model(CPU_MODEL))
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = "restart"
    ET.SubElement(domain, "on_crash").text = "destroy"
    devices = ET.SubElement(domain, "devices")
    devices.append(ET.fromstring(disk_xml(plan.root_disk, "vda", serial="root")))
    # The seed is a CD on virtio-scsi: Debian's cloud kernel has no AHCI (SATA) driver.
    ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    cdrom = ET.SubElement(devices, "disk", type="file", device="cdrom")
    ET.SubElement(cdrom, "driver", name="qemu", type="raw")
    ET.SubElement(cdrom, "source", file=plan.seed_iso)
    ET.SubElement(cdrom, "target", dev="sda", bus="scsi")
    ET.SubElement(cdrom, "readonly")
    interface = ET.SubElement(devices, "interface", type="network")
    ET.SubElement(interface, "source", network=plan.network)
    ET.SubElement(interface, "mac", address=plan.mac)
    ET.SubElement(interface, "model", type="virtio")
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=plan.console_log, append="on")
    ET.SubElement(serial, "target", port="0")
    rng = ET.SubElement(devices, "rng", model="virtio")
    ET.SubElement(rng, "backend", model="random").text = "/dev/urandom"
    ET.SubElement(devices, "memballoon", model="none")
    ET.register_namespace(METADATA_KEY, METADATA_NS)
    return ET.tostring(domain, encoding="unicode")


# QEMU's generic x86-64 model, under KVM and TCG alike: host-passthrough and host-model abort or
# fault under a KVM nested in another hypervisor (IA32_ARCH_CAPABILITIES, emulated cmpxchg16b).
CPU_MODEL = "qemu64"


def _model(name: str) -> ET.Element:
    model = ET.Element("model", fallback="allow")
    model.text = name
    return model


def disk_xml(path: str, target: str, *, serial: str) -> str:
    """A virtio qcow2 disk; `serial` names it in the guest (/dev/disk/by-id/virtio-SERIAL)."""
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2", discard="unmap")
    ET.SubElement(disk, "source", file=path)
    ET.SubElement(disk, "target", dev=target, bus="virtio")
    ET.SubElement(disk, "serial").text = serial
    return ET.tostring(disk, encoding="unicode")


@dataclass(frozen=True)
class DomainFacts:
    """What the provider reads back from a domain's XML."""

    tags: dict[str, str]
    address: str | None
    disks: dict[str, str]  # target dev -> source file
    console_log: str | None
    seed_iso: str | None


def domain_facts(xml: str) -> DomainFacts:
    root = ET.fromstring(xml)
    node = root.find(f"metadata/{{{METADATA_NS}}}node")
    tags = {t.get("key", ""): t.get("value", "") for t in node.findall(f"{{{METADATA_NS}}}tag")} \
        if node is not None else {}
    disks, seed = {}, None
    for disk in root.findall("devices/disk"):
        source, target = disk.find("source"), disk.find("target")
        if source is None or target is None or not source.get("file"):
            continue
        if disk.get("device") == "cdrom":
            seed = source.get("file")
        else:
            disks[target.get("dev", "")] = source.get("file", "")
    serial = root.find("devices/serial/source")
    return DomainFacts(tags=tags, address=node.get("address") if node is not None else None, disks=disks,
                       console_log=serial.get("path") if serial is not None else None, seed_iso=seed)


def network_xml(name: str, bridge: str, subnet: str) -> str:
    """An isolated network: no <forward> (no NAT, nothing routed off the machine), no DHCP and no
    DNS (libvirt runs no dnsmasq for it: the nodes have static addresses and the master's DNS); the
    host's address on its bridge is the subnet's first."""
    net = ipaddress.ip_network(subnet)
    network = ET.Element("network")
    ET.SubElement(network, "name").text = name
    ET.SubElement(network, "bridge", name=bridge, stp="off", delay="0")
    ET.SubElement(network, "dns", enable="no")
    ET.SubElement(network, "ip", address=str(net.network_address + 1), prefix=str(net.prefixlen))
    return ET.tostring(network, encoding="unicode")


def network_subnet(xml: str) -> str | None:
    ip = ET.fromstring(xml).find("ip")
    if ip is None or not ip.get("address"):
        return None
    prefix = ip.get("prefix") or str(ipaddress.ip_network(f"0.0.0.0/{ip.get('netmask', '0.0.0.0')}").prefixlen)
    return str(ipaddress.ip_interface(f"{ip.get('address')}/{prefix}").network)


def network_is_isolated(xml: str) -> bool:
    return ET.fromstring(xml).find("forward") is None
