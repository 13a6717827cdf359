"""`drbootstrap state ...`: the environment's state (migrate it to s3; show who holds it)."""

from __future__ import annotations

from pathlib import Path

import click

from drbootstrap.cli.run_commands import _SPEC_FILE, _STATE_DIR, _state_dir
from drbootstrap.exit_status import ExitStatus


@click.group()
def state() -> None:
    """The environment's state: journal, reports and keys (local, or s3 with a lease).

    \b
    Examples:
      drbootstrap state migrate env.yaml --to s3
      drbootstrap state migrate env.yaml --to s3://acme-drb-state/prod
    """


@state.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--to", "to", required=True, metavar="s3|s3://BUCKET/PREFIX",
              help="s3: the spec's state: block; s3://BUCKET/PREFIX: that place, the block's other settings.")
def migrate(spec_file: Path, state_dir: Path | None, to: str) -> int:
    """Move FILE's environment state from the state directory to s3 (the local copy stays as a working copy)."""
    from drbootstrap.errors import DrbError
    from drbootstrap.paths import EnvironmentPaths
    from drbootstrap.spec import load_spec
    from drbootstrap.state import state_settings
    from drbootstrap.state.migrate import migrate_to_s3

    if to != "s3" and not to.startswith("s3://"):
        raise DrbError(f"--to {to}: only s3 (or s3://BUCKET/PREFIX) is a destination", hint="e.g. --to s3")
    spec = load_spec(spec_file)
    moved = migrate_to_s3(state_settings(spec, to), EnvironmentPaths(_state_dir(state_dir), spec.environment))
    click.echo(f"{spec.environment}: journal, {len(moved.keys)} key file(s) (sealed) and {len(moved.reports)} "
               f"report file(s) now in {moved.where}; use it with state: backend s3 in the spec"
               + ("" if to == "s3" else f" or --state {to}"))
    return int(ExitStatus.OK)
