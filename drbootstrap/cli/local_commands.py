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
    """Inspect or clean up the embedded local cloud.

    \b
    Examples:
      sudo drbootstrap local status
      sudo drbootstrap local cleanup --yes
    """


@local.command("status")
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the nodes, volumes and addresses as JSON.")
def status(state_dir: Path | None, as_json: bool) -> None:
    """List the local cloud's nodes, volumes and elastic addresses.

    \b
    Examples:
      sudo drbootstrap local status
      sudo drbootstrap local status --json | jq '.nodes[].name'
    """
    from drbootstrap.providers.local import LocalNodeDriver

    driver = LocalNodeDriver(state_dir=state_dir or default_state_dir())
    nodes = driver.list_nodes()
    volumes = driver.list_volumes()
    addresses = driver.ex_describe_all_addresses()
    if as_json:
        from drbootstrap.cli.output import echo_json

        echo_json({"root": str(driver.store.root),
                   "nodes": [{"id": n.id, "name": n.name, "state": str(n.state), "address": n.private_ips[0],
                              "hostname": n.extra["hostname"], "namespace": n.extra["namespace"],
                              "image": n.extra["image_id"], "error": n.extra.get("error") or None} for n in nodes],
                   "volumes": [{"id": v.id, "name": v.name, "node_id": cast("dict[str, Any]", v.extra)["node_id"],
                                "mount_path": cast("dict[str, Any]", v.extra)["mount_path"]} for v in volumes],
                   "addresses": [{"ip": a.ip, "instance_id": a.instance_id} for a in addresses]})
        return
    click.echo(f"local cloud in {driver.store.root}: {len(nodes)} node(s)")
    for node in nodes:
        click.echo(f"  {node.id}  {node.name:<16} {node.state:<9} {node.private_ips[0]:<15} "
                   f"{node.extra['hostname']:<18} {node.extra['namespace']}  image={node.extra['image_id']}")
        if node.extra.get("error"):
            click.echo(f"      error: {node.extra['error']}")
    for volume in volumes:
        extra = cast("dict[str, Any]", volume.extra)  # the local driver fills every volume's extra
        where = f"on {extra['node_id']} at {extra['mount_path']}" if extra["node_id"] else "available"
        click.echo(f"  volume {volume.id} {volume.name} {where}")
    for address in addresses:
        click.echo(f"  address {address.ip} -> {address.instance_id or 'unassociated'}")


@local.command("cleanup")
@state_dir_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def cleanup(state_dir: Path | None, yes: bool) -> int:
    """Remove every namespace, link, mount, process and state file of the local cloud.

    Without --yes it lists the nodes that go and asks; with no terminal it refuses (exit 12).

    \b
    Examples:
      sudo drbootstrap local cleanup
      sudo drbootstrap local cleanup --yes
    """
    from drbootstrap.cli.output import confirm_or_refuse
    from drbootstrap.exit_status import ExitStatus
    from drbootstrap.providers.local import LocalNodeDriver
    from drbootstrap.providers.local.cleanup import cleanup_everything

    driver = LocalNodeDriver(state_dir=state_dir or default_state_dir())

    def listing() -> str:
        names = [node.name for node in driver.list_nodes()]
        return (f"local cloud in {driver.store.root}: will remove {len(names)} node(s)"
                + (f" ({', '.join(names)})" if names else "") + ", every volume, address and namespace of it")

    if not confirm_or_refuse("local cleanup", listing, yes=yes, question="Remove the whole local cloud?"):
        return int(ExitStatus.NOT_CONFIRMED)
    removed = cleanup_everything(driver)
    for item in removed:
        click.echo(f"removed {item}")
    click.echo(f"local cloud in {driver.store.root}: clean" + ("" if removed else " (nothing to remove)"))
    return int(ExitStatus.OK)
