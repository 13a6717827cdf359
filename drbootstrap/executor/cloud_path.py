"""The real-cloud side of `up`, `status` and `down` on EC2-family providers: the environment's key
pair and security group before the master launches, its elastic address, volumes from snapshots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drbootstrap.errors import ProviderError
from drbootstrap.executor.context import NodeRuntime, RunContext
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.providers.cloud import Pacing, split_extra
from drbootstrap.spec.models import EnvironmentSpec

EC2_FAMILY = ("ec2", "aws", "eucalyptus")
# Attachment points for a node's volumes, in the spec's order (sda.. are the root's; sdf..sdp per AWS).
DEVICES = tuple(f"/dev/sd{letter}" for letter in "fghijklmnop")


def is_ec2_family(spec: EnvironmentSpec) -> bool:
    return spec.provider.name.lower() in EC2_FAMILY


def private_key_path(state_dir: Path, environment: str) -> Path:
    """The environment key pair's private key (0600), when drbootstrap made the pair."""
    return EnvironmentPaths(state_dir, environment).ssh_private_key


def resource_name(environment: str) -> str:
    from drbootstrap.providers.ec2 import environment_resource_name

    return environment_resource_name(environment)


def create_options(spec: EnvironmentSpec, driver: Any) -> dict[str, Any]:
    """The spec's `extra` keys that every create_node takes (ex_keyname, ex_iamprofile, ...)."""
    if spec.provider.is_local:
        return {}
    return split_extra(type(driver), dict(spec.provider.extra))[1]


def launch_settings(ctx: RunContext) -> dict[str, Any]:
    """LaunchRequest fields for this provider: the environment's key pair and group on EC2."""
    if ctx.spec.provider.is_local:
        return {}
    options: dict[str, Any] = {"create_options": create_options(ctx.spec, ctx.driver())}
    if is_ec2_family(ctx.spec):
        name = resource_name(ctx.spec.environment)
        options.update(key_name=name, security_groups=(name,))
    return options


def zone_location(ctx: RunContext) -> Any:
    """The spec zone's NodeLocation, looked up once per run rather than once per launch (None: no zone)."""
    zone = ctx.spec.provider.zone
    if not zone or ctx.spec.provider.is_local:
        return None
    with ctx.lookups_lock:
        if zone not in ctx.lookups:
            from drbootstrap.providers.cloud import resolve_location

            ctx.lookups[zone] = resolve_location(ctx.driver(), zone, pacing=ctx.pacing)
        return ctx.lookups[zone]


def prepare_environment(ctx: RunContext) -> str:
    """Before the master launches: the key pair (private key 0600 in the state dir) and the security
    group with exactly the recipe's ports. Idempotent; a one-line detail."""
    from drbootstrap.providers.ec2 import ensure_key_pair, ensure_security_group

    extra = ctx.spec.provider.extra
    operator = extra.get("operator_cidr")
    if not operator:
        raise ProviderError(f"provider {ctx.spec.provider.name}: no operator_cidr, so the security group cannot say "
                            "who may reach the master's DNS, broker, Puppet CA and SSH",
                            hint="set provider.extra.operator_cidr to this controller's public address, "
                                 "e.g. 203.0.113.7/32")
    driver = ctx.driver()
    key_name = ensure_key_pair(driver, ctx.spec.environment, public_key=str(extra.get("public_key") or "") or None,
                               private_key_path=private_key_path(ctx.state_dir, ctx.spec.environment),
                               pacing=ctx.pacing)
    group_id = ensure_security_group(driver, ctx.spec.environment, str(operator), pacing=ctx.pacing)
    return f"key pair {key_name}, security group {group_id}"


def provision_node(ctx: RunContext, node: NodeRuntime) -> str:
    """After the instance exists: the master's elastic address, each volume from its snapshot."""
    from drbootstrap.providers.ec2 import (
        ensure_elastic_address,
        ensure_volume_from_snapshot,
    )

    driver = ctx.driver()
    done = []
    if node.planned.is_master:
        node.public_address = ensure_elastic_address(driver, node.provider_node, pacing=ctx.pacing)
        done.append(f"elastic address {node.public_address}")
    group = node.planned.group
    wanted = group.volumes if group is not None else []
    if len(wanted) > len(DEVICES):
        raise ProviderError(f"{node.hostname}: {len(wanted)} volumes, more than the {len(DEVICES)} device names",
                            hint="give the node fewer volumes")
    zone = ctx.spec.provider.zone or node.provider_node.extra.get("availability")
    for volume, device in zip(wanted, DEVICES):
        made = ensure_volume_from_snapshot(driver, node.provider_node, snapshot_id=volume.snapshot, device=device,
                                           size_gb=volume.size_gb, zone=zone, pacing=ctx.pacing)
        done.append(f"{volume.name} {made.id} at {device}" + (f" from {volume.snapshot}" if volume.snapshot else ""))
    return ", ".join(done)


def volumes_detail(ctx: RunContext, node: NodeRuntime) -> str:
    """The volumes step on EC2: the volumes were made and attached with the instance (launch)."""
    group = node.planned.group
    wanted = group.volumes if group is not None else []
    if not wanted:
        return "no volumes"
    return ", ".join(f"{v.name} attached at {d} at launch (mount {v.mount})" for v, d in zip(wanted, DEVICES))


# ---- status and down ---------------------------------------------------------------------------


def describe_resources(driver: Any, spec: EnvironmentSpec, pacing: Pacing) -> list[str]:
    """One line per per-environment resource the cloud holds: key pair, group, addresses, volumes."""
    from drbootstrap.providers.cloud import HOSTNAME_TAG
    from drbootstrap.providers.ec2 import (
        DEVICE_TAG,
        environment_addresses,
        environment_volumes,
    )

    name = resource_name(spec.environment)
    lines = [f"key pair {k.name}" for k in pacing.call(driver, "list key pairs", driver.list_key_pairs)
             if k.name == name]
    groups = pacing.call(driver, f"find security group {name}",
                         lambda: driver.ex_get_security_groups(filters={"group-name": name}))
    lines += [f"security group {g.id} ({name})" for g in groups]
    for address in environment_addresses(driver, spec.environment, pacing=pacing):
        lines.append(f"address {address.ip} -> {address.instance_id or 'not associated'}")
    for volume in environment_volumes(driver, spec.environment, pacing=pacing):
        tags = volume.extra.get("tags") or {}
        lines.append(f"volume {volume.id} {tags.get(HOSTNAME_TAG, '?')}:{tags.get(DEVICE_TAG, '?')}")
    return lines


def destroy_environment(driver: Any, spec: EnvironmentSpec, state_dir: Path, pacing: Pacing) -> tuple[list[str], list[str]]:
    """Terminate the nodes, release addresses, delete volumes, group and key pair (and its private
    key file). Returns (hostnames destroyed, resource lines removed)."""
    from drbootstrap.providers.ec2 import destroy_ec2_environment

    resources = describe_resources(driver, spec, pacing)
    hostnames = destroy_ec2_environment(driver, spec.environment, pacing=pacing)
    private_key_path(state_dir, spec.environment).unlink(missing_ok=True)
    return hostnames, resources
