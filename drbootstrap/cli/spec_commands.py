"""`drbootstrap validate` and `drbootstrap plan`: read a spec, contact nothing.

Heavy imports (pydantic, rich) happen inside the commands so that `--help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the CLI imports the plan only when a command runs
    from drbootstrap.plan import Plan

_SPEC_FILE = click.Path(path_type=Path)  # load_spec refuses a missing file, a directory, a FIFO
_SKIP_SECRETS_HELP = "Do not read ${env:...}/${file:...} credential references (check everything else)."


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@click.option("--skip-secrets", is_flag=True, help=_SKIP_SECRETS_HELP)
def validate(spec_file: Path, skip_secrets: bool) -> None:
    """Check the environment spec FILE and report every problem, one located line each."""
    from drbootstrap.plan import build_plan
    from drbootstrap.spec import load_spec

    plan = build_plan(load_spec(spec_file, resolve_secrets=not skip_secrets))
    nodes, waves = len(plan.nodes()), len(plan.waves)
    click.echo(f"{spec_file}: valid ({nodes} node{'s' * (nodes != 1)} in {waves} wave{'s' * (waves != 1)})")


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--skip-secrets", is_flag=True, help=_SKIP_SECRETS_HELP)
@click.option("--resolve", is_flag=True,
              help="Ask the cloud what each image resolves to (and check subnets and zones) as `up` would.")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None, help="With --resolve: the state directory.")
def plan(spec_file: Path, as_json: bool, skip_secrets: bool, resolve: bool, state_dir: Path | None) -> None:
    """Show the ordered recovery plan of FILE: the master, then the waves of nodes (contacts
    nothing, unless --resolve)."""
    from drbootstrap.plan import build_plan
    from drbootstrap.spec import load_spec

    spec = load_spec(spec_file, resolve_secrets=not skip_secrets)
    recovery_plan = build_plan(spec)
    images: list[str] = []
    if resolve:
        from drbootstrap.cli.run_commands import _state_dir
        from drbootstrap.executor.cloud_request import resolved_images_for_plan

        images = resolved_images_for_plan(spec, _state_dir(state_dir))
    if as_json:
        import json

        click.echo(json.dumps({**recovery_plan.to_dict(), **({"images": images} if resolve else {})}, indent=2))
        return
    _print_table(recovery_plan)
    for line in images:
        click.echo(line)


def _print_table(recovery_plan: Plan) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Recovery plan: {recovery_plan.environment} ({recovery_plan.domain}) on {recovery_plan.provider}"
    )
    for column in ("step", "wave", "hostname", "fqdn", "role", "image", "size"):
        table.add_column(column, justify="right" if column in ("step", "wave") else "left", no_wrap=True)
    for step, node in enumerate(recovery_plan.nodes(), start=1):
        wave = "master" if node.is_master else str(node.wave)
        table.add_row(str(step), wave, node.hostname, node.fqdn, node.role, node.image, node.size)
    # sys.stdout is looked up now, so a redirected stdout (tests, pipes) receives the table.
    Console(file=sys.stdout, width=max(100, Console(file=sys.stdout).width)).print(table)
