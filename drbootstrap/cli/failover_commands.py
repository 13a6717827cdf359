"""`drbootstrap failover` and `failback`: render what the failover runner reports; decide nothing."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from drbootstrap.cli.run_commands import _SPEC_FILE, _STATE_DIR, _state_dir
from drbootstrap.cli.up_view import renderer as _renderer
from drbootstrap.exit_status import ExitStatus


def _switch_command(command: str, spec_file: Path, state_dir: Path | None, to_site: str, dry_run: bool,
                    as_json: bool, plain: bool) -> int:
    from drbootstrap.failover.run import run_switch
    from drbootstrap.spec import load_spec

    spec = load_spec(spec_file)
    renderer = _renderer(as_json, plain)
    try:
        with renderer:
            result = run_switch(spec, _state_dir(state_dir), to_site, command=command, dry_run=dry_run,
                                emit=renderer.event)
    except KeyboardInterrupt:
        click.echo(f"drbootstrap: interrupted; the failover journal holds every finished phase: run `{command}` "
                   "again to resume", err=True)
        sys.stderr.flush()
        import os

        os._exit(int(ExitStatus.INTERRUPTED))
    _print(command, result, as_json)
    return int(ExitStatus.OK)


def _when(at: float | None) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(at)) if at is not None else "-"


def _print(command: str, result: Any, as_json: bool) -> None:
    switch = result.switch
    if as_json:
        from drbootstrap.failover.report import switch_report

        click.echo(json.dumps({"event": "result", "exit_status": 0, "already_active": result.already_active,
                               "planned": result.planned,
                               "switch": switch_report(result.environment, switch) if switch else None,
                               "report": str(result.report_json) if result.report_json else None}))
        return
    if result.planned:
        click.echo(f"{command} --dry-run of {result.environment} to {result.to_site} (nothing changed):")
        for line in result.planned:
            click.echo(f"  {line}")
        return
    if switch is None:
        click.echo(f"{result.environment}: already active at {result.to_site}; nothing switched")
        return
    click.echo(f"{result.environment}: {command} {switch.from_site} -> {switch.to_site} done; DNS switched at "
               f"{_when(switch.switch_time)}, clients moved by {_when(switch.clients_moved_by)} "
               f"(old TTL {switch.old_ttl} s)")
    for before, after in zip(switch.records_before, switch.records_after, strict=False):
        click.echo(f"  {before.describe()} -> {', '.join(after.values)}")
    if switch.fence is not None:
        click.echo(f"  site {switch.from_site}: {switch.fence.state}: {switch.fence.detail}")
    click.echo(f"report: {result.report_markdown}")


_TO = click.option("--to", "to_site", required=True, metavar="SITE",
                   help="The site to move to: `primary` (the main provider) or a name from `sites:`.")
_DRY_RUN = click.option("--dry-run", is_flag=True,
                        help="Show what would change at each site and in DNS; change nothing.")
_JSON = click.option("--json", "as_json", is_flag=True, help="One JSON event per line, then the result.")
_PLAIN = click.option("--plain", is_flag=True, help="Plain lines even on a terminal.")


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@_TO
@_DRY_RUN
@_JSON
@_PLAIN
def failover(spec_file: Path, state_dir: Path | None, to_site: str, dry_run: bool, as_json: bool,
             plain: bool) -> int:
    """Bring FILE's environment up at SITE, verify it, then switch its public DNS there and fence the
    old site. Resumes after a crash; exits 15 when SITE fails verification (DNS untouched).

    \b
    Examples:
      drbootstrap failover env.yaml --to dr-east --dry-run
      drbootstrap failover env.yaml --to dr-east
    """
    return _switch_command("failover", spec_file, state_dir, to_site, dry_run, as_json, plain)


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@_TO
@_DRY_RUN
@_JSON
@_PLAIN
def failback(spec_file: Path, state_dir: Path | None, to_site: str, dry_run: bool, as_json: bool,
             plain: bool) -> int:
    """The same as failover, back to SITE (usually `primary`) after a failover.

    \b
    Examples:
      drbootstrap backup env.yaml --site dr-east   # carry back what was written there
      drbootstrap failback env.yaml --to primary
    """
    return _switch_command("failback", spec_file, state_dir, to_site, dry_run, as_json, plain)
