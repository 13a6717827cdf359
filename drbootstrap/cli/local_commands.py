"""`drbootstrap local status|cleanup`: look at or remove the embedded local cloud's nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import click

from drbootstrap.paths import default_state_dir

state_dir_option = click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="State directory (default: $DRB_STATE_DIR, /var/lib/drbootstrap as root).",
)


@click.group("local")
def local() -> None:
    """Inspect or clean up the embedded local cloud."""


@local.command("status")
@state_dir_option
def status(state_dir: Path | None) -> None:
    """List the local cloud's nodes, volumes and elastic addresses."""
    from drbootstrap.providers.local import LocalNodeDriver

    driver = LocalNodeDriver(state_dir=state_dir or default_state_dir())
    nodes = driver.list_nodes()
    click.echo(f"local cloud in {driver.store.root}: {len(nodes)} node(s)")
    for node in nodes:
        click.echo(f"  {node.id}  {node.name:<16} {node.state:<9} {node.private_ips[0]:<15} "
                   f"{node.extra['hostname']:<18} {node.extra['namespace']}  image={node.extra['image_id']}")
        if node.extra.get("error"):
            click.echo(f"      error: {node.extra['error']}")
    for volume in driver.list_volumes():
        extra = cast("dict[str, Any]", volume.extra)  # the local driver fills every volume's extra
        where = f"on {extra['node_id']} at {extra['mount_path']}" if extra["node_id"] else "available"
        click.echo(f"  volume {volume.id} {volume.name} {where}")
    for address in driver.ex_describe_all_addresses():
        click.echo(f"  address {address.ip} -> {address.instance_id or 'unassociated'}")


@local.command("cleanup")
@state_dir_option
def cleanup(state_dir: Path | None) -> None:
    """Remove every namespace, link, mount, process and state file of the local cloud."""
    from drbootstrap.providers.local import LocalNodeDriver
    from drbootstrap.providers.local.cleanup import cleanup_everything

    driver = LocalNodeDriver(state_dir=state_dir or default_state_dir())
    removed = cleanup_everything(driver)
    for item in removed:
        click.echo(f"removed {item}")
    click.echo(f"local cloud in {driver.store.root}: clean" + ("" if removed else " (nothing to remove)"))
