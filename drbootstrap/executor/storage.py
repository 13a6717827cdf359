"""Volumes from snapshots: created once per node and volume (found again by name), then attached."""

from __future__ import annotations

from drbootstrap.errors import NotFoundError
from drbootstrap.executor.context import NodeRuntime, RunContext


def volume_name(environment: str, hostname: str, volume: str) -> str:
    """The cloud-side name that marks a volume as this environment's (what `down` looks for)."""
    return f"drb-{environment}-{hostname}-{volume}"


def environment_volume_prefix(environment: str) -> str:
    return f"drb-{environment}-"


def attach_volumes(ctx: RunContext, node: NodeRuntime) -> str:
    group = node.planned.group
    wanted = group.volumes if group is not None else []
    if not wanted:
        return "no volumes"
    driver = ctx.driver()
    existing = {v.name: v for v in ctx.pacing.call(driver, "list volumes", driver.list_volumes)}
    done = []
    for spec in wanted:
        name = volume_name(ctx.spec.environment, node.hostname, spec.name)
        volume = existing.get(name)
        if volume is None:
            snapshot = _find_snapshot(ctx, driver, spec.snapshot) if spec.snapshot else None
            volume = ctx.pacing.call(driver, f"create volume {name}", lambda s=spec, n=name, snap=snapshot:
                                     driver.create_volume(s.size_gb, n, snapshot=snap))
        attached_to = (volume.extra or {}).get("node_id") or (volume.extra or {}).get("instance_id")
        if attached_to != node.provider_node.id:
            device = ctx.access.node_path(node.hostname, str(spec.mount))
            ctx.pacing.call(driver, f"attach volume {name}", lambda v=volume, d=device:
                            driver.attach_volume(node.provider_node, v, device=d))
        done.append(f"{spec.name} at {spec.mount}" + (f" from {spec.snapshot}" if spec.snapshot else ""))
    return ", ".join(done)


def _find_snapshot(ctx: RunContext, driver: object, wanted: str) -> object:
    snapshots = ctx.pacing.call(driver, "list snapshots", driver.list_snapshots)
    for snapshot in snapshots:
        if wanted in (snapshot.id, snapshot.name):
            return snapshot
    raise NotFoundError(f"snapshot {wanted!r} not found at the provider",
                        hint="check the volume's `snapshot:` in the spec against the provider's snapshots")
