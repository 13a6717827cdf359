"""`drbootstrap backup` and `backups`: the CLI renders what drbootstrap.backups reports."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from drbootstrap.cli.run_commands import _SPEC_FILE, _STATE_DIR, _state_dir
from drbootstrap.exit_status import ExitStatus

CATALOG_SCHEMA_VERSION = 1


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--prune", is_flag=True, help="Then delete the backups each volume's retention allows "
                                            "(never the newest verified one).")
@click.option("--prune-only", is_flag=True,
              help="Only delete what retention allows (here and at `copy_backups` sites): nothing taken, "
                   "no agent needed.")
@click.option("--site", default=None, metavar="SITE",
              help="Back up the environment running at this site (a name from `sites:`; default: the primary).")
def backup(spec_file: Path, state_dir: Path | None, prune: bool, prune_only: bool, site: str | None) -> int:
    """Snapshot every volume FILE marks `backup:`: pre_snapshot, manifest on the node, snapshot, post_snapshot.

    Then copies each new good snapshot to every site whose spec says `copy_backups: true`.
    Exits 7 when a volume's backup is not good (a hook or the manifest failed) or a copy to a site
    failed, one line each; 10 when another command (up, down, failover) holds the environment, naming it.

    \b
    Examples:
      drbootstrap backup env.yaml
      drbootstrap backup env.yaml --prune
      drbootstrap backup env.yaml --site dr-east
      drbootstrap backup env.yaml --prune-only
    """
    from drbootstrap.backups.choose import format_time
    from drbootstrap.backups.take import VolumeBackup, prune_backups_only, take_backups
    from drbootstrap.failover.sites import at_site
    from drbootstrap.spec import load_spec

    spec, site_paths = at_site(load_spec(spec_file), _state_dir(state_dir), site)

    def show(one: VolumeBackup) -> None:
        if one.good and not one.problems:
            click.echo(f"{one.where}: {one.snapshot_id} good, {one.files} entries, {_size(one.bytes)}")
        else:
            kept = f"snapshot {one.snapshot_id} kept, tagged not good" if one.snapshot_id and not one.good else \
                f"snapshot {one.snapshot_id}" if one.snapshot_id else "no snapshot"
            click.echo(f"{one.where}: {'; '.join(one.problems)} ({kept})")

    if prune_only:
        run = prune_backups_only(spec, _state_dir(state_dir), site_paths)
        if not run.pruned:
            click.echo(f"{spec.environment}: nothing to prune (every backup is within its retention)")
    else:
        run = take_backups(spec, _state_dir(state_dir), prune=prune, on_volume=show, paths=site_paths)
    for copy in run.copies:
        if copy.shared:
            click.echo(f"{copy.where}: {copy.snapshot_id} is already at site {copy.site} "
                       "(one snapshot store both sites see): nothing copied")
        else:
            click.echo(f"{copy.where}: {copy.snapshot_id} copied to site {copy.site} as {copy.copy_id}")
    for record in run.pruned:
        click.echo(f"pruned {record.id} ({record.hostname}/{record.name}, taken {format_time(record.created_at)})")
    for dump in run.dumps.records:
        click.echo(f"{dump.hostname}/{dump.name}: dump {dump.id} good, {_size(dump.size_bytes)}, "
                   f"sha256 {(dump.manifest_digest or '')[:12]}, in {dump.location}")
    if run.master.record is not None:
        state = run.master.record
        click.echo(f"{state.hostname}/{state.name}: master state {state.id} good, sealed, {_size(state.size_bytes)}, "
                   f"sha256 {(state.manifest_digest or '')[:12]}, in {state.location}")
    if run.master.refused:
        click.echo(f"drbootstrap: {run.master.refused}", err=True)
    if run.master.failure is not None:
        click.echo(f"drbootstrap: {run.master.failure.line()}: nothing recorded as good", err=True)
    for one in run.failed:
        click.echo(f"drbootstrap: backup of {one.where} on {one.hostname} is not good: {'; '.join(one.problems)}",
                   err=True)
    for failure in run.dumps.failures:
        click.echo(f"drbootstrap: {failure.line()}: nothing recorded as good", err=True)
    for line in run.site_failures:
        click.echo(f"drbootstrap: {line} (run `drbootstrap backup FILE` again: a copy already made is found, "
                   "not made twice)", err=True)
    return int(run.exit_status)


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--environment", "environment", default=None, metavar="NAME",
              help="Whose backups (default: the spec's environment; a drill restores production's).")
@click.option("--json", "as_json", is_flag=True, help="The catalog as JSON (with a schema_version).")
@click.option("--site", default=None, metavar="SITE",
              help="The backups that site's provider holds (a name from `sites:`; default: the primary).")
def backups(spec_file: Path, state_dir: Path | None, environment: str | None, as_json: bool,
            site: str | None) -> int:
    """The backup catalog: per volume, every backup with its time, age, size, and whether a restore verified it.

    \b
    Examples:
      drbootstrap backups env.yaml
      drbootstrap backups env.yaml --json | jq '.backups[0]'
      drbootstrap backups env.yaml --site dr-east
    """
    from drbootstrap.backups.take import read_catalog
    from drbootstrap.failover.sites import at_site
    from drbootstrap.spec import load_spec

    spec, site_paths = at_site(load_spec(spec_file), _state_dir(state_dir), site)
    records = sorted(read_catalog(spec, _state_dir(state_dir), environment, site_paths),
                     key=lambda r: (r.hostname, r.name, -r.created_at, r.id))
    now = time.time()
    if as_json:
        click.echo(json.dumps({"schema_version": CATALOG_SCHEMA_VERSION,
                               "environment": environment or spec.environment, "generated_at": now,
                               "backups": [_json(asdict(r), now) for r in records]}, indent=1))
        return int(ExitStatus.OK)
    if not records:
        click.echo(f"{environment or spec.environment}: no backups yet (take one with `drbootstrap backup FILE`)")
        return int(ExitStatus.OK)
    from rich.console import Console
    from rich.table import Table

    from drbootstrap.backups.choose import format_age, format_time

    table = Table(title=f"{environment or spec.environment}: {len(records)} backup(s)")
    for column in ("node", "volume", "backup", "taken (UTC)", "age", "size", "good", "verified"):
        table.add_column(column, no_wrap=True)
    for r in records:
        verified = "never restored" if r.verified_ok is None else \
            f"{'ok' if r.verified_ok else 'FAILED'} {format_time(r.verified_at or 0)}"
        table.add_row(r.hostname, r.name, r.id, format_time(r.created_at), format_age(now - r.created_at),
                      _size(r.size_bytes), "yes" if r.good else "NO", verified)
    Console(width=160).print(table)
    return int(ExitStatus.OK)


def _json(record: dict[str, Any], now: float) -> dict[str, Any]:
    return {**record, "age_seconds": round(now - record["created_at"], 1)}


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
