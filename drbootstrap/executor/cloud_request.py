"""What the spec asks of the cloud for each node, in the provider's neutral terms: where it is placed
(a subnet or a zone, spread round-robin over its group's placement), which image (by id or looked
up by name: resolved once, before anything is created, and kept in the journal so that a resumed
run launches the same one), its tags, root volume size, create options, fallback sizes and service
ports. The provider decides
what each means on its cloud (providers/base.py Provider.preflight and launch_settings)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from drbootstrap.journal import Fact
from drbootstrap.plan import Step
from drbootstrap.providers.nodes import ServicePort
from drbootstrap.providers.values import ImageRef, Preflight, VolumeWanted
from drbootstrap.spec.models import EnvironmentSpec, NodeGroup
from drbootstrap.spec.placement import ImageLookupSpec, ImageParameterSpec, PlacementSpec, lookup_key

if TYPE_CHECKING:
    from drbootstrap.executor.context import RunContext
    from drbootstrap.plan import PlannedNode

IMAGE_FACT = "image:"  # a launch step's fact per logical image: the id it resolved to
SIZE_FACT = "size"  # a launch step's fact: the size the node was launched as (a fallback, maybe)


def placement_spec(spec: EnvironmentSpec, group: NodeGroup | None) -> tuple[str, PlacementSpec] | None:
    """The placement that applies to the master (group None) or a group, and the spec key naming it."""
    if group is not None and group.placement is not None:
        return f"nodes[{spec.nodes.index(group)}].placement", group.placement
    if group is None and spec.master.placement is not None:
        return "master.placement", spec.master.placement
    if spec.provider.placement is not None:
        return "provider.placement", spec.provider.placement
    return None


def placement_of(spec: EnvironmentSpec, planned: PlannedNode) -> tuple[str, str] | None:
    """("subnet"|"zone", name) for one node: its group's choices round-robin by its place in the
    group; the master takes the first; None: the provider's zone (or the cloud's default)."""
    found = placement_spec(spec, planned.group)
    if found is None:
        return ("zone", spec.provider.zone) if spec.provider.zone else None
    choices = found[1].choices
    if planned.group is None:
        return choices[0]
    return choices[planned.group.all_hostnames().index(planned.hostname) % len(choices)]


def image_ref(spec: EnvironmentSpec, logical: str) -> ImageRef:
    image = spec.provider.images.get(logical, logical)
    if isinstance(image, ImageLookupSpec):
        return ImageRef(name=image.name, owner=image.owner)
    if isinstance(image, ImageParameterSpec):
        return ImageRef(ssm=image.ssm)
    return ImageRef(id=image)


def preflight_for(spec: EnvironmentSpec) -> Preflight:
    """Everything the spec will ask of the cloud, for the provider to check before anything is made."""
    subnets: dict[str, str] = {}
    zones: dict[str, str] = {}
    unplaced: list[str] = []
    options: dict[str, dict[str, object]] = {}
    network: list[str] = []
    for group in [None, *spec.nodes]:
        where = "master" if group is None else f"nodes[{spec.nodes.index(group)}]"
        if group is not None and group.extra:
            options[f"{where}.extra"] = dict(group.extra)
        if group is not None:
            network += [f"{where}.{name}" for name, value in (("ports", group.ports),
                                                             ("elastic_address", group.elastic_address)) if value]
        found = placement_spec(spec, group)
        if found is None:
            if spec.provider.zone:
                zones.setdefault(spec.provider.zone, "provider.zone")
            else:
                unplaced.append(where)
            continue
        key, placement = found
        for subnet in placement.subnets:
            subnets.setdefault(lookup_key(subnet), f"{key}.subnets")
        for zone in placement.zones:
            zones.setdefault(zone, f"{key}.zones")

    logical = [spec.master.image, *(group.image for group in spec.nodes)]
    images = {name: image_ref(spec, name) for name in dict.fromkeys(logical)}
    return Preflight(subnets=subnets, zones=zones, images=images, unplaced=tuple(unplaced),
                     create_options=options, group_network=tuple(network))


def record_preflight(ctx: RunContext) -> None:
    """The runner's check before anything is made: the provider checks subnets, zones and images;
    the images not yet recorded are resolved and recorded (the journal's `resolved`), so that a run
    killed at any point after this resumes with the same images."""
    wanted = preflight_for(ctx.spec)
    unrecorded = {name: ref for name, ref in wanted.images.items() if recorded_image(ctx, name) is None}
    resolved = ctx.provider.preflight(dataclasses.replace(wanted, images=unrecorded))
    if resolved:
        ctx.journal.record_resolved({IMAGE_FACT + name: image_id for name, image_id in resolved.items()})


def recorded_image(ctx: RunContext, logical: str) -> str | None:
    """The image id this environment's run (this one or one before it) resolved `logical` to."""
    value = ctx.journal.data.resolved.get(IMAGE_FACT + logical)
    if isinstance(value, str):
        return value
    for record in ctx.journal.data.nodes.values():
        step = record.steps.get(Step.LAUNCH)
        value = step.facts.get(IMAGE_FACT + logical) if step is not None else None
        if isinstance(value, str):
            return value
    return None


def images_for_launch(ctx: RunContext, planned: PlannedNode) -> tuple[str, dict[str, Fact]]:
    """The node's image id and the facts to record: the journal's resolution if there is one; else
    the master's launch resolves every image of the spec (after checking the rest of the preflight)."""
    recorded = recorded_image(ctx, planned.image)
    if recorded is not None:
        return recorded, {IMAGE_FACT + planned.image: recorded}
    wanted = preflight_for(ctx.spec)
    if not planned.is_master:  # the master's launch resolved the others: this image is new since
        wanted = Preflight(images={planned.image: wanted.images[planned.image]})
    resolved = ctx.provider.preflight(wanted)
    return resolved[planned.image], {IMAGE_FACT + name: image_id for name, image_id in resolved.items()}


def tags_for(spec: EnvironmentSpec, group: NodeGroup | None) -> dict[str, str]:
    """The spec's custom tags, then the group's (or the master's) over them."""
    return {**spec.tags, **(group.tags if group is not None else spec.master.tags)}


def service_ports(group: NodeGroup | None) -> tuple[ServicePort, ...]:
    """The ports a group serves, opened to its nodes (the master's are the recipe's own)."""
    return tuple(ServicePort(p.port, p.protocol, tuple(p.sources)) for p in (group.ports if group else []))


def root_size_gb(spec: EnvironmentSpec, group: NodeGroup | None) -> int | None:
    return group.root_size_gb if group is not None else spec.master.root_size_gb


def volumes_wanted(group: NodeGroup | None) -> list[VolumeWanted]:
    return [VolumeWanted(v.name, str(v.mount), v.size_gb, v.snapshot, type=v.type, iops=v.iops,
                         throughput=v.throughput, encrypted=v.encrypted, kms_key=v.kms_key)
            for v in (group.volumes if group else [])]


def resolved_images_for_plan(spec: EnvironmentSpec, state_dir: Path) -> list[str]:
    """`plan --resolve`: one line per logical image, its reference and what the cloud resolves it
    to now, after the same checks `up` makes first (subnets, zones). When the cloud cannot be
    asked, or refuses the spec, the lines say so instead: `plan` itself never fails on it."""
    from drbootstrap.errors import DrbError
    from drbootstrap.executor.build import provider_for
    from drbootstrap.paths import EnvironmentPaths

    wanted = preflight_for(spec)
    try:
        provider = provider_for(spec, EnvironmentPaths(state_dir, spec.environment))
        resolved = provider.preflight(wanted)
    except DrbError as error:
        return [f"image {logical}: {ref} (not resolved: {line})" for logical, ref in wanted.images.items()
                for line in str(error).splitlines()[:1]] + str(error).splitlines()[1:]
    except Exception as error:  # noqa: BLE001 - an unreachable cloud is reported, not a crash of `plan`
        return [f"image {logical}: {ref} (not resolved: cannot contact the cloud: {type(error).__name__})"
                for logical, ref in wanted.images.items()]
    return [f"image {logical}: {ref} -> {resolved[logical]}" for logical, ref in wanted.images.items()]
