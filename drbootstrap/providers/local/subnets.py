"""A drill's own subnet on the local cloud: chosen deterministically from the drill's id among
ranges that no interface of this machine and no network of this local cloud uses."""

from __future__ import annotations

import hashlib
import ipaddress
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
