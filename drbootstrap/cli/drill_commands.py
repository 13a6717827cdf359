"""`drbootstrap drill`, `history` and `schedule`: the CLI renders what drbootstrap.drill decides.

`drill` turns SIGTERM into the drill's own interruption, so a drill stopped by a service manager
tears down before it exits, as it does on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click

from drbootstrap.cli.run_commands import _STATE_DIR, _state_dir
from drbootstrap.cli.up_view import renderer as _renderer
from drbootstrap.exit_status import ExitStatus

_SPEC_FILE = click.Path(path_type=Path)


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--cleanup", is_flag=True, help="Only reap drills that expired or whose process died; run no drill.")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line, then the drill's record.")
@click.option("--plain", is_flag=True, help="Plain lines even on a terminal.")
def drill(spec_file: Path, state_dir: Path | None, cleanup: bool, as_json: bool, plain: bool) -> int:
    """Rehearse FILE's recovery under a drill name, isolated from production; judge it; tear it down.

    Exits 0 when the drill passed, 14 when a check failed, recovery missed its RTO target, or the
    drill was interrupted (it tears down first).

    \b
    Examples:
      drbootstrap drill env.yaml
      drbootstrap drill env.yaml --cleanup   # reap drills a crash left behind
    """
    from drbootstrap.spec import load_spec

    spec = load_spec(spec_file)
    state = _state_dir(state_dir)
    if cleanup:
        return _cleanup(spec, state, as_json)
    from drbootstrap.drill.run import DrillInterrupted, run_drill

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise DrillInterrupted()

    signal.signal(signal.SIGTERM, on_sigterm)
    renderer = _renderer(as_json, plain)
    try:
        with renderer:
            record = run_drill(spec, state, emit=renderer.event)
    except (KeyboardInterrupt, DrillInterrupted):
        click.echo("drbootstrap: drill interrupted; torn down", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(ExitStatus.DRILL_FAILED))  # node threads may be mid-step; the drill is gone
    if as_json:
        click.echo(json.dumps({"event": "result", **record.to_json()}))
    else:
        _print_record(record)
    return int(ExitStatus.OK if record.passed else ExitStatus.DRILL_FAILED)


def _print_record(record: object) -> None:
    from drbootstrap.drill.history import DrillRecord

    assert isinstance(record, DrillRecord)
    ttr = f"{record.time_to_recovery_seconds:.0f} s" if record.time_to_recovery_seconds is not None else "-"
    target = f"{record.rto_target_seconds:.0f} s" if record.rto_target_seconds else "-"
    click.echo(f"{record.environment}: drill {record.drill_id} {record.result.upper()}: time to recovery {ttr} "
               f"(target {target}); report: {record.report_html or '-'}")
    for reason in record.reasons:
        click.echo(f"  {reason}")
    for line in record.notified:
        click.echo(f"notified: {line}")


def _cleanup(spec: object, state: Path, as_json: bool) -> int:
    from drbootstrap.drill.reap import reap_drills

    result = reap_drills(spec, state)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps({"schema_version": 1, "reaped": [t.to_dict() for t in result.reaped],
                               "kept": result.kept, "problems": result.problems}))
    else:
        for teardown in result.reaped:
            click.echo(f"reaped {teardown.environment} ({teardown.reason}): "
                       f"{', '.join(teardown.before + teardown.removed) or 'nothing listed'}"
                       + ("" if teardown.clean else f"; LEFT: {', '.join(teardown.after)}"))
        for line in result.kept:
            click.echo(f"kept {line}")
        for line in result.problems:
            click.echo(f"not reaped: {line}", err=True)
        if not result.reaped and not result.kept:
            click.echo("no drill to reap")
    left = any(not t.clean for t in result.reaped) or result.problems
    return int(ExitStatus.PROVIDER if left else ExitStatus.OK)


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--json", "as_json", is_flag=True, help="The drills as JSON (with schema_version).")
def history(spec_file: Path, state_dir: Path | None, as_json: bool) -> int:
    """Show FILE's past drills: date, result, time to recovery against the target, RPO, slowest step; a trend.

    \b
    Examples:
      drbootstrap history env.yaml
      drbootstrap history env.yaml --json
    """
    from drbootstrap.drill.history import SCHEMA_VERSION, load_history, trend
    from drbootstrap.spec import load_spec

    spec = load_spec(spec_file)
    records = load_history(_state_dir(state_dir), spec.environment)
    if as_json:
        click.echo(json.dumps({"schema_version": SCHEMA_VERSION, "environment": spec.environment,
                               "trend": trend(records), "drills": [r.to_json() for r in records]}, indent=1))
        return int(ExitStatus.OK)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{spec.environment}: {len(records)} drill(s)")
    for column in ("date (UTC)", "drill", "result", "RTO / target", "RPO restored", "slowest step"):
        table.add_column(column, no_wrap=True)
    for r in records:
        rto = "-" if r.time_to_recovery_seconds is None else f"{r.time_to_recovery_seconds:.0f} s"
        target = "-" if r.rto_target_seconds is None else f"{r.rto_target_seconds:.0f} s"
        met = "" if r.rto_met is None else (" met" if r.rto_met else " MISSED")
        slowest = "-" if not r.slowest_step else \
            f"{r.slowest_step['node']} {r.slowest_step['step']} {r.slowest_step['seconds']:.0f} s"
        table.add_row(time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.started_at)), r.drill_id, r.result,
                      f"{rto} / {target}{met}", "-" if r.rpo_seconds is None else f"{r.rpo_seconds:.0f} s", slowest)
    Console(width=160 if not sys.stdout.isatty() else None).print(table)
    click.echo(f"trend: {trend(records)}")
    return int(ExitStatus.OK)


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--every", required=True, metavar="WHEN", help="A systemd calendar expression: weekly, 'Sun 03:00'...")
@click.option("--print", "print_only", is_flag=True, help="Print the units instead of writing them.")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/etc/systemd/system"),
              show_default=True, help="Where to write the units.")
def schedule(spec_file: Path, state_dir: Path | None, every: str, print_only: bool, unit_dir: Path) -> int:
    """Write a systemd timer and service that run FILE's drill (enable with systemctl enable --now NAME.timer).

    \b
    Examples:
      drbootstrap schedule env.yaml --every weekly --print
      drbootstrap schedule env.yaml --every 'Sun 03:00'
    """
    from drbootstrap.drill.schedule import drill_units, write_units
    from drbootstrap.spec import load_spec

    spec = load_spec(spec_file)
    configured = os.environ.get("DRB_STATE_DIR")
    state_dir = state_dir or (Path(configured) if configured else None)
    units = drill_units(spec.environment, spec_file, every, Path(sys.argv[0]).resolve()
                        if Path(sys.argv[0]).name == "drbootstrap" else Path(sys.executable).with_name("drbootstrap"),
                        state_dir)
    if print_only:
        click.echo(f"# {units.name}.service\n{units.service}\n# {units.name}.timer\n{units.timer}", nl=False)
        return int(ExitStatus.OK)
    for path in write_units(units, unit_dir):
        click.echo(f"wrote {path}")
    click.echo(f"enable it with: systemctl daemon-reload && systemctl enable --now {units.name}.timer")
    return int(ExitStatus.OK)
