"""The volumes step when volumes are restored from backups: each volume made from its chosen backup,
attached, then verified before Puppet or the restore hooks touch it (its content manifest computed
again on the node by the backup agent and compared with the one taken at backup time). A backup
that fails is named, tagged failed at the provider and, with `fallback: older`, replaced by the
next older one, verified in turn. The facts say per volume what was restored, from when, verified.
"""

from __future__ import annotations

from dataclasses import replace

from drbootstrap.backups.catalog import BackupRecord, verified_tags
from drbootstrap.backups.choose import MarkedVolume, RestoreRequest, VolumeRestore, choose_restores, format_age
from drbootstrap.backups.restored import VolumeRestoreFacts
from drbootstrap.errors import BackupError, DrbError
from drbootstrap.executor.context import NodeRuntime, RunContext
from drbootstrap.journal import Fact
from drbootstrap.plan import Plan
from drbootstrap.providers.values import VolumeWanted


def marked_volumes(plan: Plan) -> list[MarkedVolume]:
    """Every volume of the plan's nodes that the spec marks `backup:`."""
    return [MarkedVolume(planned.hostname, str(volume.name), volume.backup.fallback == "older")
            for planned in plan.nodes() if planned.group is not None
            for volume in planned.group.volumes if volume.backup is not None]


def choose_for_run(ctx: RunContext) -> dict[tuple[str, str], VolumeRestore]:
    """Before anything is launched: what each marked volume restores from (BackupError if what was
    asked matches nothing). The catalog is read from the provider's tags of the backup environment."""
    marked = marked_volumes(ctx.plan)
    asked = ctx.options.as_of is not None or bool(ctx.options.backup_ids)
    if not marked:
        if asked:
            raise BackupError("--as-of/--backup given, but the spec marks no volume `backup:`: nothing launched",
                              hint="mark the volumes to restore with `backup:` in the spec")
        return {}
    request = RestoreRequest(ctx.options.backup_environment or ctx.spec.environment, ctx.options.as_of,
                             tuple(ctx.options.backup_ids))
    return choose_restores(ctx.provider.list_backups(request.backup_environment), marked, request)

def wanted_with_backups(ctx: RunContext, node: NodeRuntime, wanted: list[VolumeWanted]) -> list[VolumeWanted]:
    """The spec's volumes, those restored from a backup made from the chosen one."""
    chosen = {volume: restore.chosen for (hostname, volume), restore in ctx.restores.items()
              if hostname == node.hostname and restore.chosen is not None}
    return [replace(w, snapshot=chosen[w.name].id) if w.name in chosen else w for w in wanted]


def verify_restored_volumes(ctx: RunContext, node: NodeRuntime, wanted: list[VolumeWanted]) -> tuple[list[str], dict]:
    """After the volumes are attached: verify each restored one, falling back as the spec allows.
    (detail parts, facts). Raises BackupError when a volume has no candidate left that verifies."""
    details: list[str] = []
    facts: dict[str, Fact] = {}
    for (hostname, volume), restore in sorted(ctx.restores.items()):
        if hostname != node.hostname:
            continue
        spec_volume = next(w for w in wanted if w.name == volume)
        outcome = _verify_one(ctx, node, restore, spec_volume)
        facts.update(outcome.facts())
        details.append(_describe(outcome, spec_volume.snapshot))
    return details, facts


def _verify_one(ctx: RunContext, node: NodeRuntime, restore: VolumeRestore, wanted: VolumeWanted) -> VolumeRestoreFacts:
    now = int(ctx.clock.time())
    if restore.chosen is None:
        return VolumeRestoreFacts(restore.volume, restored_at=now)
    failed: list[str] = []
    reasons: list[str] = []
    candidates = restore.candidates if restore.fallback else restore.candidates[:1]
    for index, record in enumerate(candidates):
        if index > 0:  # the previous one failed: the volume made from it makes way for this one
            ctx.provider.discard_volume(node.provider_node, node.hostname, restore.volume)
            ctx.provider.attach_volumes(node.provider_node, node.hostname, [replace(wanted, snapshot=record.id)],
                                        lambda path: ctx.access.node_path(node.hostname, path))
        ok, why = _manifest_matches(ctx, node, record)
        _tag_verified(ctx, record, ok)
        if ok is None:
            return VolumeRestoreFacts(restore.volume, record.id, int(record.created_at), int(ctx.clock.time()),
                                      "unverifiable", ",".join(failed))
        if ok:
            return VolumeRestoreFacts(restore.volume, record.id, int(record.created_at), int(ctx.clock.time()),
                                      "ok", ",".join(failed))
        failed.append(record.id)
        reasons.append(f"backup {record.id} of {node.hostname}/{restore.volume} failed verification: {why}")
    more = "" if restore.fallback else "; set `fallback: older` to try the older backups"
    raise BackupError("; ".join(reasons) + (" (no older backup verified)" if restore.fallback else "") + more,
                      hint="see `drbootstrap backups FILE`; restore a chosen one with `up --backup ID`")


def _manifest_matches(ctx: RunContext, node: NodeRuntime, record: BackupRecord) -> tuple[bool | None, str]:
    """(True, "") when the node's volume holds what the backup's manifest says; (None, why) when
    the backup has no manifest to compare."""
    if not record.manifest_digest:
        return None, "it carries no manifest"
    try:
        data = ctx.fleet().call(node.fqdn, "backup", "manifest", {"volume": record.name}, ctx.options.verify_timeout)
    except DrbError as error:
        return False, f"the node could not compute its manifest ({error.message})"
    digest = str(data.get("digest", ""))
    if digest != record.manifest_digest:
        return False, (f"content manifest {digest[:12]} on the node, {record.manifest_digest[:12]} at backup time "
                       f"({data.get('files')} entries, {data.get('bytes')} bytes restored)")
    return True, ""


def _tag_verified(ctx: RunContext, record: BackupRecord, ok: bool | None) -> None:
    if ok is None:
        return
    try:
        ctx.provider.tag_backup(record.id, verified_tags(ok, ctx.clock.time()))
    except DrbError:
        pass  # the restore's outcome stands in the journal and report; the tag is a convenience


def _describe(outcome: VolumeRestoreFacts, spec_snapshot: str | None) -> str:
    if not outcome.backup_id:
        start = f"made from the spec's snapshot {spec_snapshot}" if spec_snapshot else "started empty"
        return f"{outcome.volume}: no backup yet, {start}"
    age = format_age(outcome.rpo_seconds or 0)
    line = f"{outcome.volume} restored from {outcome.backup_id} ({age} old), verified {outcome.verified}"
    if outcome.failed:
        line += f" after {outcome.failed} failed verification (fallback: older)"
    return line
