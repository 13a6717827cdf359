"""Standby groups (spec `standby: N`): warm spares named ROLE-standby1..N, built by `up` like every
node. When the watcher finds an active node of such a group dead (the same detection as for
resurrection), its name moves to a healthy spare at once: its elastic address where the provider
gives it one (Provider.move_elastic_address), else its name in the master's dnsmasq (the dns
agent's `move`: the name resolves to the spare's address beside the spare's own name). The dead
node is then rebuilt behind it through the runner (Watcher._rebuild_behind): named (which gives it
its PTR), the name moved back to the spare while it is configured and checked, and given back to it
once it is complete; the spare waits again, so the group keeps its N spares.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from drbootstrap.executor.lifecycle import NodeStatus
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.spec.models import EnvironmentSpec, NodeGroup

MoveName = Callable[[str, NodeStatus], str]  # (hostname, the node to answer for it) -> how the name moved


@dataclass(frozen=True)
class Takeover:
    """The spare chosen for a dead active node."""

    hostname: str
    standby: NodeStatus


def standby_group(spec: EnvironmentSpec, hostname: str) -> NodeGroup | None:
    """The group with spares whose active node this is (None for a standby itself or a group without)."""
    for group in spec.nodes:
        if group.standby and hostname in group.expand_hostnames():
            return group
    return None


def is_standby(spec: EnvironmentSpec, hostname: str) -> bool:
    return any(hostname in group.standby_hostnames() for group in spec.nodes)


def choose_standby(spec: EnvironmentSpec, hostname: str, nodes: dict[str, NodeStatus],
                   serving: dict[str, str]) -> Takeover | None:
    """A spare of the dead node's group that is alive, answering and not already serving another name."""
    group = standby_group(spec, hostname)
    if group is None:
        return None
    busy = set(serving.values())
    for name in group.standby_hostnames():
        node = nodes.get(name)
        if node is not None and not node.dead and node.address and name not in busy:
            return Takeover(hostname, node)
    return None


def real_move_name(spec: EnvironmentSpec, paths: EnvironmentPaths, rpc_timeout: float = 20.0) -> MoveName:
    """Move a node's elastic address, or else its name in the master's dnsmasq, to another node (a
    standby, or the rebuilt node itself once complete)."""

    def move(hostname: str, standby: NodeStatus) -> str:
        from drbootstrap.executor.build import client_signing, connect_fleet, provider_for
        from drbootstrap.executor.secrets import load_or_create_psk, signing_scheme
        from drbootstrap.journal import Journal

        provider = provider_for(spec, paths)
        target = provider.find(standby.hostname)
        moved = provider.move_elastic_address(hostname, target) if target is not None else None
        if moved is not None:
            return f"elastic address {moved} -> {standby.hostname}"
        master = Journal.at(paths).data.nodes.get(spec.master.hostname)
        master_node = provider.find(spec.master.hostname)
        address = (provider.addresses(master_node).reachable if master_node is not None else None) or \
            (master.address if master is not None else None)
        if address is None or standby.address is None:
            from drbootstrap.errors import ProviderError

            raise ProviderError(f"{hostname}: the master's or {standby.hostname}'s address is unknown; the name "
                                "cannot move", hint="run `drbootstrap status FILE` and `drbootstrap up FILE`")
        signing = client_signing(signing_scheme(spec, paths), spec, paths, load_or_create_psk(spec, paths.state_dir))
        fleet = connect_fleet(spec, paths, address, signing, connect_timeout=5.0)
        try:
            fleet.call(spec.fqdn(spec.master.hostname), "dns", "move",
                       {"name": spec.fqdn(hostname), "address": standby.address}, rpc_timeout)
        finally:
            fleet.close()
        return f"dns: {spec.fqdn(hostname)} -> {standby.address} ({standby.hostname})"

    return move


def timed(move: MoveName, takeover: Takeover, clock: Callable[[], float] = time.monotonic) -> tuple[str, float]:
    """How the name moved, and in how many seconds."""
    started = clock()
    how = move(takeover.hostname, takeover.standby)
    return how, clock() - started
