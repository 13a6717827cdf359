"""The environment's libvirt network: isolated (no forwarding, no NAT), its own bridge, a subnet that
overlaps nothing on the libvirt host (no interface's, no other libvirt network's). The host's address
on the bridge (the subnet's first) is where the controller reaches the nodes; nodes take static
addresses from the 10th on."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
from collections.abc import Iterable
from typing import Any

from drbootstrap.errors import PrerequisiteError, ProviderError
from drbootstrap.providers.libvirt.xml import network_is_isolated, network_subnet, network_xml

FIRST_NODE_HOST = 10  # .1 is the host's; nodes from .10


def network_name(environment: str) -> str:
    return f"drb-{environment}"


def bridge_name(environment: str) -> str:
    """At most 15 characters (the kernel's limit), the same for the same environment."""
    return "drbv" + hashlib.sha256(environment.encode()).hexdigest()[:10]


def host_address(subnet: str) -> str:
    return str(ipaddress.ip_network(subnet).network_address + 1)


def host_subnets(except_bridge: str) -> list[tuple[str, str]]:
    """(interface, subnet) of every IPv4 address on this machine but `except_bridge`'s."""
    done = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise PrerequisiteError("cannot list this machine's addresses (`ip -j addr` failed)",
                                hint="install iproute2")
    found = []
    for link in json.loads(done.stdout or "[]"):
        if link.get("ifname") == except_bridge:
            continue
        for info in link.get("addr_info", []):
            if info.get("local") and not info["local"].startswith("127."):
                interface = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
                found.append((link["ifname"], str(interface.network)))
    return found


def overlaps(subnet: str, others: Iterable[tuple[str, str]]) -> str | None:
    """The first (owner, subnet) of `others` overlapping `subnet`, as 'owner (subnet)'; None: free."""
    wanted = ipaddress.ip_network(subnet)
    for owner, other in others:
        if wanted.overlaps(ipaddress.ip_network(other)):
            return f"{owner} ({other})"
    return None


def ensure_network(connection: Any, environment: str, subnet: str) -> str:
    """The environment's network defined and started (made when missing); a one-line detail."""
    import libvirt

    name, bridge = network_name(environment), bridge_name(environment)
    try:
        network = connection.networkLookupByName(name)
    except libvirt.libvirtError:
        network = None
    if network is not None:
        xml = network.XMLDesc(0)
        if network_subnet(xml) != str(ipaddress.ip_network(subnet)) or not network_is_isolated(xml):
            raise ProviderError(f"libvirt network {name} exists with subnet {network_subnet(xml)}, not {subnet}",
                                hint="run `drbootstrap down` for this environment first, or use its subnet")
        if not network.isActive():
            network.create()
        return f"network {name} ({subnet}, bridge {bridge}) already there"
    clash = overlaps(subnet, [*host_subnets(bridge), *libvirt_subnets(connection, except_name=name)])
    if clash:
        raise PrerequisiteError(f"provider.network {subnet} overlaps {clash} on this libvirt host",
                                hint="pick a subnet nothing on this machine uses")
    network = connection.networkDefineXML(network_xml(name, bridge, subnet))
    try:
        network.create()
    except libvirt.libvirtError:
        network.undefine()
        raise
    return f"isolated network {name} ({subnet}, bridge {bridge}, host {host_address(subnet)}) made"


def libvirt_subnets(connection: Any, except_name: str) -> list[tuple[str, str]]:
    found = []
    for network in connection.listAllNetworks():
        subnet = network_subnet(network.XMLDesc(0))
        if network.name() != except_name and subnet:
            found.append((f"libvirt network {network.name()}", subnet))
    return found


def destroy_network(connection: Any, environment: str) -> str | None:
    """Stop and undefine the environment's network; its name, or None when there was none."""
    import libvirt

    name = network_name(environment)
    try:
        network = connection.networkLookupByName(name)
    except libvirt.libvirtError:
        return None
    if network.isActive():
        network.destroy()
    network.undefine()
    return name


def free_address(subnet: str, taken: Iterable[str]) -> str:
    """The lowest node address of `subnet` not in `taken`."""
    net = ipaddress.ip_network(subnet)
    used = set(taken)
    for index, candidate in enumerate(net.hosts(), start=1):
        if index >= FIRST_NODE_HOST and str(candidate) not in used:
            return str(candidate)
    raise ProviderError(f"no free address left in {subnet}", hint="give provider.network a larger subnet")
