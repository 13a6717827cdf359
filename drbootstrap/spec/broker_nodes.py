"""The broker cluster's nodes (`master.broker.replicas`): the one place they are named.

The master's RabbitMQ node is the cluster's first (its seed); `replicas - 1` more run on nodes of
their own, broker1..brokerN-1, a node group of role `broker` that the plan builds like any other
(launched, named in the master's DNS, discovered, Puppet run). Every agent and the controller's
client are given the master's broker and these names, resolved through the master's DNS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drbootstrap.spec.models import EnvironmentSpec

BROKER_ROLE = "broker"


def broker_node_names(replicas: int) -> list[str]:
    """The hostnames of the broker nodes beside the master's: broker1..broker<replicas-1>."""
    return [f"{BROKER_ROLE}{index}" for index in range(1, replicas)]


def with_broker_nodes(spec: EnvironmentSpec) -> EnvironmentSpec:
    """SPEC with its broker nodes as a node group (unchanged with one replica or once added)."""
    from drbootstrap.spec.models import NodeGroup

    names = broker_node_names(spec.master.broker.replicas)
    if not names or any(group.role == BROKER_ROLE for group in spec.nodes):
        return spec
    group = NodeGroup.model_validate({"role": BROKER_ROLE, "hostnames": names})
    return spec.model_copy(update={"nodes": [*spec.nodes, group]})


def broker_fqdns(spec: EnvironmentSpec) -> list[str]:
    """The broker nodes' names in the environment's domain (what agents are given beside the master)."""
    return [spec.fqdn(name) for name in broker_node_names(spec.master.broker.replicas)]
