"""The local cloud's networks beyond the one a driver was made for: a drill's own subnet, chosen
deterministically from the drill's id among ranges no interface here and no node of this cloud
uses; and a network's bridge, released when nothing uses it any more."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING

from drbootstrap.errors import PrerequisiteError
from drbootstrap.providers.local import netns

if TYPE_CHECKING:
    from drbootstrap.providers.local.driver import LocalNodeDriver

# Drills take their subnets from here (10.250.0.0 - 10.251.255.255), away from the example's 10.213/24.
DRILL_RANGE = ipaddress.IPv4Network("10.250.0.0/15")


def free_drill_network(seed: str, production: str, driver: LocalNodeDriver) -> str:
    """The first free subnet, as large as production's (a /24 at most), starting at a place the
    seed decides: the same seed on the same machine state gives the same subnet."""
    taken = [ipaddress.ip_network(production)]
    taken += [ipaddress.ip_interface(cidr).network for _, cidr in netns.host_ipv4_addresses()]
    state = driver.store.read()
    taken += [ipaddress.ip_network(n.network) for n in state.nodes.values()]
    taken += [ipaddress.ip_network(a.network) for a in state.addresses.values()]
    return pick_free_subnet(seed, max(ipaddress.ip_network(production).prefixlen, 24), taken)


def pick_free_subnet(seed: str, prefixlen: int, taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """The first subnet of DRILL_RANGE (with `prefixlen`) overlapping none of `taken`, searched from
    an offset derived from `seed`."""
    candidates: list[ipaddress.IPv4Network] = list(
        DRILL_RANGE.subnets(new_prefix=min(max(prefixlen, DRILL_RANGE.prefixlen), 29)))
    start = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % len(candidates)
    for offset in range(len(candidates)):
        candidate = candidates[(start + offset) % len(candidates)]
        if not any(candidate.overlaps(network) for network in taken if isinstance(network, ipaddress.IPv4Network)):
            return str(candidate)
    raise PrerequisiteError(f"no free subnet left in {DRILL_RANGE} for a drill's bridge",
                            hint="end the drills still running (`drbootstrap drill FILE --cleanup`) or "
                                 "remove addresses in that range from this machine")


def release_unused_bridge(driver: LocalNodeDriver, network: str) -> str | None:
    """Remove the bridge of NETWORK when no node, address or launch in progress uses it; the
    bridge's name when it was removed. The rest of the cloud (other networks) stays."""
    network = str(ipaddress.ip_network(network))
    with driver.store.locked():
        state = driver.store.read()
        in_use = state.used_addresses(network) or any(n.network == network for n in state.nodes.values())
        bridge = driver.plumbing.bridge_name(network)
        if in_use or not Path("/sys/class/net", bridge).exists():
            return None
        netns.run(["ip", "link", "del", bridge], check=False)
    return bridge
