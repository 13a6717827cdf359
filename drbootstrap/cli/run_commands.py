"""`drbootstrap up`, `status` and `down`: the CLI renders what the executor reports, it decides nothing.

On a terminal `up` shows a live table (node, role, address, state, step, elapsed); otherwise one
plain line per event; `--json` prints one JSON event per line.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import click

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


def _state_dir(given: Path | None) -> Path:
    from drbootstrap.paths import default_state_dir

    return given or default_state_dir()


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--redo", "redo", multiple=True, type=click.Choice(_STEPS),
              help="Run this completed step again (repeatable). `launch` replaces the nodes.")
@click.option("--only", "only", multiple=True, metavar="NAMES",
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
@_SITE
@_STATE
@_TAKE_OVER
def up(spec_file: Path, state_dir: Path | None, redo: tuple[str, ...], only: tuple[str, ...], until: str | None,
       as_of: str | None, backup_ids: tuple[str, ...], backups_from: str | None, as_json: bool, plain: bool,
       site: str | None, state: str | None, take_over: bool) -> int:
    """Rebuild the environment of FILE; resumes from its journal after a crash or Ctrl-C.

    A plain `up` retries whatever failed before; `--only` narrows it to some nodes. Volumes marked
    `backup:` are restored from their newest good backup and verified (exit 13: none matches
    --as-of/--backup, or none verified)."""
    from drbootstrap.executor import UpOptions, resolve_only
    from drbootstrap.executor import up as run_up
    from drbootstrap.failover.sites import at_site
    from drbootstrap.plan import build_plan
    from drbootstrap.spec import load_spec

    state_root = _state_dir(state_dir)
    spec, site_paths = at_site(load_spec(spec_file), state_root, site)
    plan = build_plan(spec)
    names, failed = resolve_only(plan, only)
    from drbootstrap.backups.choose import parse_time

    options = UpOptions(redo=frozenset(Step(s) for s in redo), only=names, only_failed=failed,
                        until=Step(until) if until else None, as_of=parse_time(as_of) if as_of else None,
                        backup_ids=tuple(backup_ids), backup_environment=backups_from)
    renderer = _renderer(as_json, plain)
    try:
        with renderer:
            result, paths = run_up(spec, state_root, options=options, emit=renderer.event, plan=plan,
                                   paths=site_paths, state=state, take_over=take_over)
    except KeyboardInterrupt:
        click.echo("drbootstrap: interrupted; the journal holds every finished step: run `up` again to resume",
                   err=True)
        sys.stderr.flush()
        import os

        os._exit(int(ExitStatus.INTERRUPTED))  # worker threads may be mid-step; the journal is consistent
    _print_result(result, paths, as_json)
    return int(result.exit_status)


def _print_result(result: Any, paths: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"event": "result", "exit_status": int(result.exit_status),
                               "failed": [{"node": o.hostname, "state": o.state, "step": o.step, "reason": o.reason,
                                           "log_tail": o.log_tail} for o in result.failed],
                               "report": str(paths.json), "report_markdown": str(paths.markdown),
                               "report_html": str(paths.html) if paths.html else None,
                               **_figures_json(paths)}))
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
            "rto_target_seconds": figures.rto_target_seconds, "rto_met": figures.rto_met}


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


# ---- renderers --------------------------------------------------------------------------------


def _renderer(as_json: bool, plain: bool) -> Any:
    if as_json:
        return JsonLines()
    if not plain and sys.stdout.isatty():
        return LiveTable()
    return PlainLines()


class PlainLines:
    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        pass

    def event(self, event: Any) -> None:
        step = f" {event.step}" if event.step else ""
        detail = f": {event.detail}" if event.detail else ""
        click.echo(f"[{event.elapsed:7.1f}s] {event.node or '-'}{step} {event.state}{detail}")


class JsonLines(PlainLines):
    def event(self, event: Any) -> None:
        click.echo(json.dumps({"event": "step", **event.to_dict()}))


class LiveTable(PlainLines):
    """A rich Live table, refreshed from the events (rows keyed by node)."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.rows: dict[str, dict[str, Any]] = {}
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self.live = Live(self._table(), console=console or Console(), refresh_per_second=4, transient=False)

    def __enter__(self) -> Self:
        self.live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.live.update(self._table())
        self.live.__exit__(exc_type, exc, traceback)

    def event(self, event: Any) -> None:
        with self._lock:
            if not event.node:
                self.messages = (self.messages + [event.detail])[-3:]
            else:
                row = self.rows.setdefault(event.node, {"role": event.role, "address": "", "state": "",
                                                        "step": "", "started": time.monotonic()})
                row.update(state=event.state, step=event.step or row["step"], address=event.address or row["address"])
                if event.state in ("failed", "blocked") or (event.state == "done" and not event.step):
                    row["finished"] = time.monotonic()
        self.live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title="drbootstrap up", caption="\n".join(getattr(self, "messages", [])) or None)
        for column in ("node", "role", "address", "state", "step", "elapsed"):
            table.add_column(column, no_wrap=True)
        colours = {"done": "green", "failed": "red", "blocked": "yellow", "running": "cyan"}
        for node, row in getattr(self, "rows", {}).items():
            elapsed = row.get("finished", time.monotonic()) - row["started"]
            state = row["state"]
            table.add_row(node, row["role"], row["address"], f"[{colours.get(state, 'white')}]{state}[/]",
                          str(row["step"]), f"{elapsed:.0f} s")
        return table


# ---- status and down --------------------------------------------------------------------------


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--no-ping", is_flag=True, help="Do not ask the agents over the broker.")
@_SITE
@_STATE
def status(spec_file: Path, state_dir: Path | None, as_json: bool, no_ping: bool, site: str | None,
           state: str | None) -> int:
    """Show FILE's nodes: cloud state, names, steps done, agent liveness (ping) and Puppet state.

    Exits 0 when nothing is down or failed, 7 when a node is absent or not running in the cloud,
    failed a step, or its agent is silent (each listed); `up --until` leaves nodes incomplete, not down.
    """
    from dataclasses import asdict

    from drbootstrap.executor import status as read_status
    from drbootstrap.failover.sites import at_site
    from drbootstrap.spec import load_spec

    spec, site_paths = at_site(load_spec(spec_file), _state_dir(state_dir), site)
    result = read_status(spec, _state_dir(state_dir), ping=not no_ping, paths=site_paths, state=state)
    healthy = int(ExitStatus.PARTIAL if result.problems else ExitStatus.OK)
    if as_json:
        click.echo(json.dumps({**asdict(result), "problems": result.problems}, indent=1))
        return healthy
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.environment}: {result.broker or 'broker not asked'}")
    for column in ("node", "role", "address", "cloud", "steps", "last step", "agent", "puppet"):
        table.add_column(column, no_wrap=column != "puppet")
    for node in result.nodes:
        table.add_row(node.hostname, node.role, node.address or "-", node.cloud_state,
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
    return healthy


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_SITE
@_STATE
@_TAKE_OVER
def down(spec_file: Path, state_dir: Path | None, yes: bool, site: str | None, state: str | None,
         take_over: bool) -> int:
    """Destroy every node and volume FILE's environment owns (by journal and by tags); idempotent.

    Without --yes it lists what will go and asks; with no terminal to ask at (cron, CI) it refuses
    and destroys nothing (exit 12).
    """
    from drbootstrap.errors import NotConfirmed
    from drbootstrap.executor import down as tear_down
    from drbootstrap.executor import status as read_status
    from drbootstrap.failover.sites import at_site
    from drbootstrap.spec import load_spec

    spec, site_paths = at_site(load_spec(spec_file), _state_dir(state_dir), site)
    if not yes:
        if not sys.stdin.isatty():
            raise NotConfirmed(f"down {spec_file}: nothing destroyed: there is no terminal to confirm at",
                               hint="run it again with --yes to destroy without asking")
        owned = read_status(spec, _state_dir(state_dir), ping=False, paths=site_paths, state=state)
        live = [n.hostname for n in owned.nodes if n.cloud_state != "absent"] + owned.orphans
        click.echo(f"{spec.environment}: will destroy {len(live)} node(s)"
                   + (f" ({', '.join(live)})" if live else "") + ", their volumes"
                   + (f" and {len(owned.resources)} shared resource(s)" if owned.resources else ""))
        if not click.confirm(f"Destroy environment {spec.environment!r}?", default=False):
            click.echo("drbootstrap: nothing destroyed")
            return int(ExitStatus.NOT_CONFIRMED)
    result = tear_down(spec, _state_dir(state_dir), paths=site_paths, state=state, take_over=take_over)
    click.echo(f"{spec.environment}: destroyed {len(result.destroyed)} node(s)"
               + (f" ({', '.join(result.destroyed)})" if result.destroyed else "")
               + (f" and {len(result.volumes)} volume(s)" if result.volumes else ""))
    for line in result.resources:
        click.echo(f"removed {line}")
    for name in result.names_kept:
        click.echo(f"kept the controller name {name}")
    return int(ExitStatus.OK)
