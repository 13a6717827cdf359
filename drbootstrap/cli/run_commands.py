"""`drbootstrap up`, `status` and `down`: the CLI renders what the executor reports, it decides nothing.

What `up` shows while it runs, and its recap, are cli/up_view.py's: a live table on a terminal,
otherwise one plain line per event; `--json` prints one JSON event per line, then the result.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import click

from drbootstrap.cli.output import with_schema_version
from drbootstrap.cli.up_view import JsonLines, LiveTable, PlainLines, print_recap, renderer  # noqa: F401
from drbootstrap.exit_status import ExitStatus
from drbootstrap.plan import Step  # light: the plan module imports no pydantic until it plans

_SPEC_FILE = click.Path(path_type=Path)  # load_spec refuses a missing file, a directory, a FIFO
_STATE_DIR = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                          help="Where journals and reports live (default: $DRB_STATE_DIR or /var/lib/drbootstrap).")
_STEPS = [str(step) for step in Step]
_SITE = click.option("--site", default=None, metavar="SITE",
                     help="Work on the environment at this site (a name from `sites:`; default: the primary).")
_STATE = click.option("--state", "state", default=None, metavar="local|s3|s3://BUCKET/PREFIX",
                      help="Where the state lives, over the spec's state: block (s3 takes its other settings).")
_TAKE_OVER = click.option("--take-over", "take_over", is_flag=True,
                          help="s3 state: take the lease of a holder that stopped renewing it (waits for it to "
                               "expire; never a live holder's).")


def _only_hostnames(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from drbootstrap.cli.completion import only_hostnames

    return only_hostnames(ctx, param, incomplete)


def _state_dir(given: Path | None) -> Path:
    from drbootstrap.paths import default_state_dir

    return given or default_state_dir()


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--redo", "redo", multiple=True, type=click.Choice(_STEPS),
              help="Run this completed step again (repeatable). `launch` replaces the nodes.")
@click.option("--only", "only", multiple=True, metavar="NAMES", shell_complete=_only_hostnames,
              help="Work only on these nodes (comma-separated hostnames), or FAILED: those not complete.")
@click.option("--until", "until", type=click.Choice(_STEPS), default=None, metavar="STEP",
              help="Stop each node after this step (journalled; a later `up` resumes). "
                   "`--until launch`: launch everything, wire networking and volumes, stop.")
@click.option("--as-of", "as_of", default=None, metavar="TIME",
              help="Restore each volume marked `backup:` from its newest backup taken at or before TIME "
                   "(2026-11-25T14:00:00Z, epoch seconds, or an age like 2h).")
@click.option("--backup", "backup_ids", multiple=True, metavar="ID",
              help="Restore from this backup (repeatable, one per volume; see `drbootstrap backups FILE`).")
@click.option("--backups-from", "backups_from", default=None, metavar="ENVIRONMENT",
              help="Restore the backups another environment took (a drill restores production's).")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line, then the result.")
@click.option("--plain", is_flag=True, help="Plain lines even on a terminal.")
@click.option("--yes", is_flag=True, help="With --redo launch: replace the nodes without asking.")
@click.option("--heartbeat", type=click.FloatRange(min=1.0), default=10.0, show_default=True, metavar="SECONDS",
              help="Say what a node waits for once it is this long in one step, and again as often.")
@_SITE
@_STATE
@_TAKE_OVER
def up(spec_file: Path, state_dir: Path | None, redo: tuple[str, ...], only: tuple[str, ...], until: str | None,
       as_of: str | None, backup_ids: tuple[str, ...], backups_from: str | None, as_json: bool, plain: bool,
       yes: bool, heartbeat: float, site: str | None, state: str | None, take_over: bool) -> int:
    """Rebuild the environment of FILE; resumes from its journal after a crash or Ctrl-C.

    A plain `up` retries whatever failed before; `--only` narrows it to some nodes. `--redo launch`
    destroys and replaces nodes: it lists them and asks, and with no terminal refuses (exit 12)
    unless --yes. Volumes marked `backup:` are restored from their newest good backup and verified
    (exit 13: none matches --as-of/--backup, or none verified).

    \b
    Examples:
      drbootstrap up env.yaml
      drbootstrap up env.yaml --only FAILED
      drbootstrap up env.yaml --until launch --plain
      drbootstrap up env.yaml --redo launch --only web01 --yes
      drbootstrap up env.yaml --as-of 2026-11-25T14:00:00Z
    """
    from drbootstrap.backups.choose import parse_time
    from drbootstrap.executor import UpOptions, resolve_only
    from drbootstrap.executor import up as run_up
    from drbootstrap.failover.sites import at_site
    from drbootstrap.plan import build_plan
    from drbootstrap.spec import load_spec

    state_root = _state_dir(state_dir)
    spec, site_paths = at_site(load_spec(spec_file), state_root, site)
    plan = build_plan(spec)
    names, failed = resolve_only(plan, only)
    options = UpOptions(redo=frozenset(Step(s) for s in redo), only=names, only_failed=failed,
                        until=Step(until) if until else None, heartbeat_seconds=heartbeat,
                        as_of=parse_time(as_of) if as_of else None, backup_ids=tuple(backup_ids),
                        backup_environment=backups_from)
    if Step.LAUNCH in options.redo and not _relaunch_confirmed(spec, site_paths, names or None, yes):
        return int(ExitStatus.NOT_CONFIRMED)
    view = renderer(as_json, plain)
    try:
        with view:
            result, paths = run_up(spec, state_root, options=options, emit=view.event, plan=plan,
                                   paths=site_paths, state=state, take_over=take_over)
    except KeyboardInterrupt:
        click.echo("drbootstrap: interrupted; the journal holds every finished step: run `up` again to resume",
                   err=True)
        sys.stderr.flush()
        import os

        os._exit(int(ExitStatus.INTERRUPTED))  # worker threads may be mid-step; the journal is consistent
    if not as_json:
        print_recap(result, getattr(paths, "figures", None), str(spec_file))
    _print_result(result, paths, as_json)
    return int(result.exit_status)


def _relaunch_confirmed(spec: Any, paths: Any, names: frozenset[str] | None, yes: bool) -> bool:
    """`--redo launch` replaces nodes: the same list-ask-or-refuse as `down`. PATHS: the environment's
    files (at the site `up` works on)."""
    from drbootstrap.cli.output import confirm_or_refuse

    def listing() -> str:
        from drbootstrap.journal import Journal

        journal = Journal.at(paths)
        launched = sorted(h for h, record in journal.data.nodes.items()
                          if record.provider_id and (names is None or h in names))
        return (f"{spec.environment}: --redo launch will destroy and replace {len(launched)} node(s)"
                + (f" ({', '.join(launched)})" if launched else "") + " and their local disks")

    return confirm_or_refuse(f"up --redo launch {spec.environment}", listing, yes=yes,
                             question="Replace these nodes?", nothing="nothing replaced")


def _print_result(result: Any, paths: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(with_schema_version({"event": "result", "exit_status": int(result.exit_status),
                               "failed": [{"node": o.hostname, "state": o.state, "step": o.step, "reason": o.reason,
                                           "log_tail": o.log_tail} for o in result.failed],
                               "report": str(paths.json), "report_markdown": str(paths.markdown),
                               "report_html": str(paths.html) if paths.html else None,
                               **_figures_json(paths)})))
        return
    total = len(result.outcomes)
    seconds = result.finished_at - result.started_at
    if not result.failed and result.until:
        click.echo(f"{result.environment}: all {total} nodes through {result.until} in {seconds:.1f} s (--until); "
                   f"run `up` again to go on; report: {paths.markdown}")
        return
    if not result.failed:
        click.echo(f"{result.environment}: all {total} nodes up in {seconds:.1f} s{_figures_line(paths)}; "
                   f"report: {paths.markdown} ({paths.html})")
        return
    click.echo(f"{result.environment}: {len(result.failed)} of {total} nodes not up ({seconds:.1f} s):")
    for outcome in result.failed:
        where = f" at {outcome.step}" if outcome.step else ""
        click.echo(f"  {outcome.hostname} {outcome.state}{where}: {outcome.reason}")
        for line in outcome.log_tail.splitlines()[-5:]:
            click.echo(f"    | {line}")
    click.echo(f"report: {paths.markdown}; retry just these: drbootstrap up FILE --only FAILED")


def _figures_json(paths: Any) -> dict[str, Any]:
    figures = getattr(paths, "figures", None)
    if figures is None:
        return {}
    return {"wall_seconds": figures.wall_seconds, "critical_path_seconds": figures.critical_path_seconds,
            "wall_over_critical_path": figures.wall_over_critical_path,
            "rto_target_seconds": figures.rto_target_seconds, "rto_met": figures.rto_met,
            "time_to_recovery_seconds": figures.time_to_recovery_seconds,
            "slowest_steps": [{"node": node, "step": step, "seconds": seconds}
                              for node, step, seconds in figures.slowest_steps]}


def _figures_line(paths: Any) -> str:
    figures = getattr(paths, "figures", None)
    if figures is None or not figures.critical_path_seconds:
        return ""
    line = f" (critical path {figures.critical_path_seconds:.1f} s"
    if figures.wall_over_critical_path is not None:
        line += f", wall / critical path {figures.wall_over_critical_path:.2f}"
    if figures.rto_met is not None:
        line += f"; RTO target {'met' if figures.rto_met else 'MISSED'}"
    return line + ")"


# ---- status and down --------------------------------------------------------------------------


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (one line per round with --watch).")
@click.option("--no-ping", is_flag=True, help="Do not ask the agents over the broker.")
@click.option("--watch", is_flag=True, help="Show the status again every --interval seconds until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(min=0.5), default=5.0, show_default=True,
              help="Seconds between rounds of --watch.")
@click.option("--rounds", type=click.IntRange(min=1), default=None, help="With --watch: stop after N rounds.")
@_SITE
@_STATE
def status(spec_file: Path, state_dir: Path | None, as_json: bool, no_ping: bool, watch: bool, interval: float,
           rounds: int | None, site: str | None, state: str | None) -> int:
    """Show FILE's nodes: cloud state, names, steps done, agent liveness (ping) and Puppet state.

    Exits 0 when nothing is down or failed, 7 when a node is absent or not running in the cloud,
    failed a step, or its agent is silent (each listed); `up --until` leaves nodes incomplete, not down.
    With --watch, the exit status is the last round's.

    \b
    Examples:
      drbootstrap status env.yaml
      drbootstrap status env.yaml --json | jq .problems
      drbootstrap status env.yaml --watch --interval 10
    """
    from drbootstrap.failover.sites import at_site
    from drbootstrap.spec import load_spec

    spec, site_paths = at_site(load_spec(spec_file), _state_dir(state_dir), site)
    where = _StatusSource(site_paths, state)
    if not watch:
        return _show_status(spec, state_dir, as_json, no_ping, where)
    done, healthy = 0, int(ExitStatus.OK)
    try:
        while rounds is None or done < rounds:
            if done:
                time.sleep(interval)
            if not as_json and sys.stdout.isatty():
                click.clear()
            if not as_json:
                click.echo(f"{time.strftime('%H:%M:%S')}  every {interval:g} s, Ctrl-C to stop")
            healthy = _show_status(spec, state_dir, as_json, no_ping, where, one_line=True)
            done += 1
    except KeyboardInterrupt:
        pass
    return healthy


class _StatusSource(NamedTuple):
    """Which of the environment's copies `status` reads: its files at a site, its --state override."""

    paths: Any
    state: str | None


def _show_status(spec: Any, state_dir: Path | None, as_json: bool, no_ping: bool, where: _StatusSource, *,
                 one_line: bool = False) -> int:
    from dataclasses import asdict

    from drbootstrap.cli.output import echo_json
    from drbootstrap.executor import status as read_status

    result = read_status(spec, _state_dir(state_dir), ping=not no_ping, paths=where.paths, state=where.state)
    healthy = int(ExitStatus.PARTIAL if result.problems else ExitStatus.OK)
    if as_json:
        echo_json({**asdict(result), "problems": result.problems, "at": time.time()},
                  indent=None if one_line else 1)
        return healthy
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.environment}: {result.broker or 'broker not asked'}")
    for column in ("node", "role", "address", "cloud", "steps", "last step", "agent", "puppet"):
        table.add_column(column, no_wrap=column != "puppet")
    for node in result.nodes:
        table.add_row(node.hostname, f"{node.role} (standby)" if node.standby else node.role, node.address or "-",
                      node.cloud_state,
                      f"{node.steps_done}/{node.steps_total}", node.last_step, node.agent, node.puppet)
    Console(width=160 if not sys.stdout.isatty() else None).print(table)
    if result.holder:
        click.echo(f"state: {result.holder}")
    for line in result.resources:
        click.echo(f"resource: {line}")
    if result.orphans:
        click.echo(f"orphans (tagged for {result.environment}, not in the spec): {', '.join(result.orphans)}")
    for line in result.problems:
        click.echo(f"down or failed: {line}")
    for node in result.nodes:
        if node.answered_by:
            click.echo(f"active: {node.answered_by} answers for {node.hostname} (standby switch by the watcher)")
    return healthy


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print what was destroyed as JSON.")
@_SITE
@_STATE
@_TAKE_OVER
def down(spec_file: Path, state_dir: Path | None, yes: bool, as_json: bool, site: str | None, state: str | None,
         take_over: bool) -> int:
    """Destroy every node and volume FILE's environment owns (by journal and by tags); idempotent.

    Without --yes it lists what will go and asks; with no terminal to ask at (cron, CI) it refuses
    and destroys nothing (exit 12).

    \b
    Examples:
      drbootstrap down env.yaml            # lists what goes, asks
      drbootstrap down env.yaml --yes      # from cron or CI
    """
    from dataclasses import asdict

    from drbootstrap.cli.output import confirm_or_refuse, echo_json
    from drbootstrap.executor import down as tear_down
    from drbootstrap.failover.sites import at_site
    from drbootstrap.spec import load_spec

    spec, site_paths = at_site(load_spec(spec_file), _state_dir(state_dir), site)

    def listing() -> str:
        from drbootstrap.executor import status as read_status

        owned = read_status(spec, _state_dir(state_dir), ping=False, paths=site_paths, state=state)
        live = [n.hostname for n in owned.nodes if n.cloud_state != "absent"] + owned.orphans
        return (f"{spec.environment}: will destroy {len(live)} node(s)"
                + (f" ({', '.join(live)})" if live else "") + ", their volumes"
                + (f" and {len(owned.resources)} shared resource(s)" if owned.resources else ""))

    if not confirm_or_refuse(f"down {spec_file}", listing, yes=yes, nothing="nothing destroyed",
                             question=f"Destroy environment {spec.environment!r}?"):
        return int(ExitStatus.NOT_CONFIRMED)
    result = tear_down(spec, _state_dir(state_dir), paths=site_paths, state=state, take_over=take_over)
    if as_json:
        echo_json({"environment": spec.environment, **asdict(result)})
        return int(ExitStatus.OK)
    click.echo(f"{spec.environment}: destroyed {len(result.destroyed)} node(s)"
               + (f" ({', '.join(result.destroyed)})" if result.destroyed else "")
               + (f" and {len(result.volumes)} volume(s)" if result.volumes else ""))
    for line in result.resources:
        click.echo(f"removed {line}")
    for name in result.names_kept:
        click.echo(f"kept the controller name {name}")
    return int(ExitStatus.OK)
