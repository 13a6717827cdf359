"""Network plumbing for the local cloud: the bridge, each node's namespace and veth, addresses.

Names derive from a per-state-dir prefix: namespace `drb-<prefix>-<n>`, host veth `<prefix>v<n>`,
bridge `<prefix>b<hash of network>`; inside a node the veth is always `eth0`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from drbootstrap.errors import PrerequisiteError, ProviderError

NODE_IFNAME = "eth0"
NETNS_DIR = Path("/run/netns")
REQUIRED_PROGRAMS = ("ip", "unshare", "nsenter", "setsid", "mount", "umount")


def run(argv: Sequence[str], *, input_text: str | None = None, check: bool = True) -> str:
    """Run a plumbing command; a failure becomes a ProviderError that quotes its stderr."""
    result = subprocess.run(list(argv), input=input_text, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ProviderError(
            f"local cloud: `{' '.join(argv[:6])}` failed: {result.stderr.strip() or result.returncode}"
        )
    return result.stdout


def check_prerequisites() -> None:
    """Root and the util-linux/iproute2 programs; raise one clear PrerequisiteError otherwise."""
    if os.geteuid() != 0:
        raise PrerequisiteError(
            "the local cloud needs root (namespaces, bridges, mounts)",
            hint="run drbootstrap with sudo, or choose a cloud provider in the spec",
        )
    missing = [name for name in REQUIRED_PROGRAMS if not _which(name)]
    if missing:
        raise PrerequisiteError(
            f"the local cloud needs the program(s) {', '.join(missing)}",
            hint="install iproute2 and util-linux (apt-get install iproute2 util-linux)",
        )


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(Path(d, name)) for d in ("/usr/sbin", "/sbin") if Path(d, name).exists()), None
    )


class Plumbing:
    """Creates and removes the links and namespaces of one state directory (one prefix)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    # names -------------------------------------------------------------------------------
    def netns_name(self, index: int) -> str:
        return f"drb-{self.prefix}-{index}"

    def host_veth(self, index: int) -> str:
        return f"{self.prefix}v{index}"

    def bridge_name(self, network: str) -> str:
        return f"{self.prefix}b{hashlib.sha1(network.encode()).hexdigest()[:4]}"

    def netns_path(self, index: int) -> Path:
        return NETNS_DIR / self.netns_name(index)

    # bridge ------------------------------------------------------------------------------
    def ensure_bridge(self, network: str) -> str:
        """The bridge of `network` with the host's address on it; refuse an overlapping network."""
        bridge = self.bridge_name(network)
        net = ipaddress.ip_network(network)
        host_address = f"{gateway_address(network)}/{net.prefixlen}"
        for ifname, cidr in host_ipv4_addresses():
            if ifname != bridge and ipaddress.ip_interface(cidr).network.overlaps(net):
                raise PrerequisiteError(
                    f"local cloud network {network} overlaps address {cidr} on interface {ifname}",
                    hint="set provider.network in the spec to an unused range, or remove that address",
                )
        if not Path("/sys/class/net", bridge).exists():
            run(["ip", "-batch", "-"], input_text=(
                f"link add {bridge} type bridge stp_state 0 forward_delay 0\n"
                f"addr add {host_address} dev {bridge}\n"
                f"link set {bridge} up\n"
            ))
        return bridge

    # nodes -------------------------------------------------------------------------------
    def create_node_network(self, index: int, network: str, addresses: Sequence[str]) -> None:
        """A namespace with lo up and eth0 (a veth on the bridge) holding `addresses`; no route out."""
        netns, veth = self.netns_name(index), self.host_veth(index)
        prefixlen = ipaddress.ip_network(network).prefixlen
        bridge = self.bridge_name(network)
        run(["ip", "-batch", "-"], input_text=(
            f"netns add {netns}\n"
            f"link add {veth} type veth peer name {NODE_IFNAME} netns {netns}\n"
            f"link set {veth} master {bridge} up\n"
        ))
        lines = [f"addr add {a}/{prefixlen} dev {NODE_IFNAME}" for a in addresses]
        lines += ["link set lo up", f"link set {NODE_IFNAME} up"]
        run(["ip", "-n", netns, "-batch", "-"], input_text="\n".join(lines) + "\n")

    def delete_node_network(self, index: int) -> None:
        """Remove the veth and the namespace; quiet when they are already gone."""
        veth = self.host_veth(index)
        if Path("/sys/class/net", veth).exists():
            run(["ip", "link", "del", veth], check=False)
        if self.netns_path(index).exists():
            run(["ip", "netns", "del", self.netns_name(index)], check=False)

    def add_address(self, index: int, network: str, address: str) -> None:
        prefixlen = ipaddress.ip_network(network).prefixlen
        run(["ip", "-n", self.netns_name(index), "addr", "add", f"{address}/{prefixlen}",
             "dev", NODE_IFNAME])

    def remove_address(self, index: int, network: str, address: str) -> None:
        prefixlen = ipaddress.ip_network(network).prefixlen
        run(["ip", "-n", self.netns_name(index), "addr", "del", f"{address}/{prefixlen}",
             "dev", NODE_IFNAME], check=False)

    def forget_neighbour(self, network: str, address: str, node_indexes: Sequence[int]) -> None:
        """An address moved to another MAC: drop stale ARP entries on the host and in nodes."""
        run(["ip", "neigh", "flush", "to", address, "dev", self.bridge_name(network)], check=False)
        for index in node_indexes:
            run(["ip", "-n", self.netns_name(index), "neigh", "flush", "to", address], check=False)

    # discovery for cleanup ---------------------------------------------------------------
    def own_namespaces(self) -> list[str]:
        prefix = f"drb-{self.prefix}-"
        if not NETNS_DIR.is_dir():
            return []
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))

    def own_links(self) -> list[str]:
        return sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(self.prefix))

    def remove_everything(self) -> None:
        """Every namespace and link of this prefix (veths first, then bridges)."""
        for netns in self.own_namespaces():
            run(["ip", "netns", "del", netns], check=False)
        links = self.own_links()
        for link in sorted(links, key=lambda name: Path("/sys/class/net", name, "bridge").exists()):
            if Path("/sys/class/net", link).exists():
                run(["ip", "link", "del", link], check=False)


def gateway_address(network: str) -> str:
    """The host's address on the bridge: the network's first address."""
    return str(next(ipaddress.ip_network(network).hosts()))


def first_node_address(network: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Nodes start at .11 in a /24 (cloud-style names like ip-10-213-0-11); right after .1 if small."""
    net = ipaddress.ip_network(network)
    offset = 11 if net.num_addresses >= 64 else 2
    return net.network_address + offset


def host_ipv4_addresses() -> list[tuple[str, str]]:
    """(interface, address/prefix) for every IPv4 address in the host's namespace."""
    data = json.loads(run(["ip", "-j", "-4", "addr", "show"]) or "[]")
    return [
        (entry["ifname"], f"{info['local']}/{info['prefixlen']}")
        for entry in data
        for info in entry.get("addr_info", [])
        if info.get("family") == "inet"
    ]


def namespace_inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
