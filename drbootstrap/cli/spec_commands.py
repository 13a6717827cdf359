"""`drbootstrap validate`, `plan` and `schema`: read a spec (and, for `plan`, the journal beside
it), contact nothing.

Heavy imports (pydantic, rich) happen inside the commands so that `--help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the CLI imports the plan only when a command runs
    from drbootstrap.plan import NodeProgress, Plan

_SPEC_FILE = click.Path(path_type=Path)  # load_spec refuses a missing file, a directory, a FIFO
_SKIP_SECRETS_HELP = "Do not read ${env:...}/${file:...} credential references (check everything else)."


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@click.option("--skip-secrets", is_flag=True, help=_SKIP_SECRETS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON (problems still exit 3).")
def validate(spec_file: Path, skip_secrets: bool, as_json: bool) -> None:
    """Check the environment spec FILE and report every problem, one located line each.

    \b
    Examples:
      drbootstrap validate env.yaml
      drbootstrap validate env.yaml --skip-secrets     # on a machine without the credentials
      drbootstrap validate env.yaml --json
    """
    from drbootstrap.errors import SpecError
    from drbootstrap.plan import build_plan
    from drbootstrap.spec import load_spec

    try:
        plan = build_plan(load_spec(spec_file, resolve_secrets=not skip_secrets))
    except SpecError as error:
        if as_json:
            from drbootstrap.cli.output import echo_json

            echo_json({"file": str(spec_file), "valid": False, "problems": str(error).splitlines()})
        raise
    nodes, waves = len(plan.nodes()), len(plan.waves)
    if as_json:
        from drbootstrap.cli.output import echo_json

        echo_json({"file": str(spec_file), "valid": True, "problems": [], "environment": plan.environment,
                   "nodes": nodes, "waves": waves})
        return
    click.echo(f"{spec_file}: valid ({nodes} node{'s' * (nodes != 1)} in {waves} wave{'s' * (waves != 1)})")


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--skip-secrets", is_flag=True, help=_SKIP_SECRETS_HELP)
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the journal lives (default: $DRB_STATE_DIR or /var/lib/drbootstrap).")
@click.option("--cloud", is_flag=True, help="Also ask the cloud: each node's state there, and orphans "
              "(tagged for this environment, not in the spec).")
@click.option("--resolve", is_flag=True,
              help="Ask the cloud what each image resolves to (and check subnets and zones) as `up` would.")
def plan(spec_file: Path, as_json: bool, skip_secrets: bool, state_dir: Path | None, cloud: bool,
         resolve: bool) -> None:
    """Show the ordered recovery plan of FILE: the master, then the waves of nodes, and against the
    environment's journal which steps are done and which `up` still has to take. Contacts nothing
    unless --cloud or --resolve.

    \b
    Examples:
      drbootstrap plan env.yaml
      drbootstrap plan env.yaml --cloud              # what the cloud holds, orphans too
      drbootstrap plan env.yaml --resolve            # the images each name resolves to now
      drbootstrap plan env.yaml --json | jq '.progress[] | select(.complete | not)'
    """
    from drbootstrap.journal import Journal
    from drbootstrap.paths import EnvironmentPaths, default_state_dir
    from drbootstrap.plan import build_plan, progress
    from drbootstrap.spec import load_spec

    spec = load_spec(spec_file, resolve_secrets=not skip_secrets)
    paths = EnvironmentPaths(state_dir or default_state_dir(), spec.environment)
    journal = Journal.at(paths).data.nodes if paths.journal.exists() else {}
    recovery_plan = build_plan(spec, done={h for h, r in journal.items() if r.steps})
    progresses = [progress(node, journal.get(node.hostname)) for node in recovery_plan.nodes()]
    in_cloud: dict[str, str] = {}
    orphans: list[str] = []
    if cloud:
        from drbootstrap.executor import status as read_status

        found = read_status(spec, paths.state_dir, ping=False)
        in_cloud, orphans = {n.hostname: n.cloud_state for n in found.nodes}, found.orphans
    images: list[str] = []
    if resolve:
        from drbootstrap.executor.cloud_request import resolved_images_for_plan

        images = resolved_images_for_plan(spec, paths.state_dir)
    if as_json:
        from drbootstrap.cli.output import echo_json

        echo_json({**recovery_plan.to_dict(), "journal": str(paths.journal) if journal else None,
                   "progress": [p.to_dict() for p in progresses],
                   **({"cloud": in_cloud, "orphans": orphans} if cloud else {}),
                   **({"images": images} if resolve else {})})
        return
    _print_table(recovery_plan, progresses, bool(journal), in_cloud)
    if orphans:
        click.echo(f"orphans (tagged for {spec.environment} in the cloud, not in the spec): {', '.join(orphans)}")
    for line in images:
        click.echo(line)


@click.command()
def schema() -> None:
    """Print the JSON Schema of the environment spec, generated from the models that validate it.

    \b
    Examples:
      drbootstrap schema > drbootstrap.schema.json
      # then, first line of env.yaml, for YAML language servers:
      # yaml-language-server: $schema=./drbootstrap.schema.json
    """
    import json

    from drbootstrap.spec.json_schema import spec_json_schema

    click.echo(json.dumps(spec_json_schema(), indent=2))


def _print_table(recovery_plan: Plan, progresses: list[NodeProgress], journalled: bool,
                 in_cloud: dict[str, str]) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Recovery plan: {recovery_plan.environment} ({recovery_plan.domain}) on {recovery_plan.provider}",
        caption=None if journalled else "no journal yet: every step is to do",
    )
    columns = ("step", "wave", "hostname", "fqdn", "role", "image", "size", "done", "next") + \
        (("cloud",) if in_cloud else ())
    for column in columns:
        table.add_column(column, justify="right" if column in ("step", "wave") else "left", no_wrap=True)
    for step, (node, done) in enumerate(zip(recovery_plan.nodes(), progresses, strict=True), start=1):
        wave = "master" if node.is_master else str(node.wave)
        to_do = f"{done.missing[0]} (+{len(done.missing) - 1})" if len(done.missing) > 1 else \
            (str(done.missing[0]) if done.missing else "complete")
        table.add_row(str(step), wave, node.hostname, node.fqdn, node.role, node.image, node.size,
                      f"{len(done.done)}/{len(node.steps)}", to_do,
                      *((in_cloud.get(node.hostname, "absent"),) if in_cloud else ()))
    # sys.stdout is looked up now, so a redirected stdout (tests, pipes) receives the table.
    Console(file=sys.stdout, width=max(120, Console(file=sys.stdout).width)).print(table)
