"""`drbootstrap ssh` and `drbootstrap logs`: one node of an environment, reached with what its state
holds (the operator key, the host key pinned from the node's console). Renders only."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from drbootstrap.exit_status import ExitStatus

if TYPE_CHECKING:
    from drbootstrap.ssh import SshTarget

_STATE_DIR = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                          help="Where the environment's state lives (default: $DRB_STATE_DIR or /var/lib/drbootstrap).")
LOGS = ("console", "boot", "agent", "puppet", "broker")


def _hostnames(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion: the hostnames of the spec given before NODE."""
    from drbootstrap.cli.completion import spec_hostnames, spec_on_command_line

    return spec_hostnames(spec_on_command_line(ctx), incomplete)


@click.command("ssh", context_settings={"ignore_unknown_options": True})
@click.argument("spec_file", metavar="FILE", type=click.Path(path_type=Path))
@click.argument("node", shell_complete=_hostnames)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@_STATE_DIR
def ssh(spec_file: Path, node: str, command: tuple[str, ...], state_dir: Path | None) -> int:
    """Open a shell on NODE of FILE's environment, or run COMMAND there (after --), as root with the
    operator key, trusting only the host key the node printed on its console. Exits with the
    command's exit status.

    \b
    Examples:
      drbootstrap ssh env.yaml web01
      drbootstrap ssh env.yaml web01 -- hostname -f
      drbootstrap ssh env.yaml db01 -- tail -n 20 /var/log/syslog
    """
    from drbootstrap.executor.operator_access import node_ssh_target
    from drbootstrap.paths import default_state_dir
    from drbootstrap.spec import load_spec

    target = node_ssh_target(load_spec(spec_file), state_dir or default_state_dir(), node)
    remote = " ".join(command)  # as OpenSSH joins them: the node's shell reads the line
    return _openssh(target, remote, tty=not remote and sys.stdin.isatty())


@click.command("logs")
@click.argument("spec_file", metavar="FILE", type=click.Path(path_type=Path))
@click.argument("node", shell_complete=_hostnames)
@_STATE_DIR
@click.option("--log", "which", type=click.Choice(LOGS), multiple=True,
              help="Only this log (repeatable): console (the cloud's copy of the boot output), boot (the "
                   "boot script's log), agent, puppet (the last run's summary), broker (the master's "
                   "broker; a broker node's RabbitMQ supervisor). Default: all the node has.")
@click.option("-n", "--lines", type=click.IntRange(min=1), default=40, show_default=True, help="Lines of each log.")
@click.option("--follow", is_flag=True, help="Keep printing the logs (not the console) as they grow (Ctrl-C stops).")
def logs(spec_file: Path, node: str, state_dir: Path | None, which: tuple[str, ...], lines: int,
         follow: bool) -> int:
    """Show NODE's logs: its console output as the cloud keeps it (readable even when the node is
    not), then over SSH its boot log, its agent's log, Puppet's last run summary and, on the master
    and the broker nodes, the broker's.

    \b
    Examples:
      drbootstrap logs env.yaml db01
      drbootstrap logs env.yaml web01 --log agent -n 100
      drbootstrap logs env.yaml web01 --follow
      drbootstrap logs env.yaml broker1 --log broker    # its RabbitMQ's restarts
    """
    from drbootstrap.errors import DrbError
    from drbootstrap.executor.operator_access import node_logs
    from drbootstrap.paths import default_state_dir
    from drbootstrap.spec import load_spec

    found = node_logs(load_spec(spec_file), state_dir or default_state_dir(), node)
    wanted = which or ("console", *found.logs)
    paths = {name: found.path_of(name) for name in wanted if name != "console"}  # refused before any output
    if follow:
        files = " ".join(paths.values())
        return _openssh(found.target, f"tail -n {lines} -F {files}", tty=False)
    if "console" in wanted:
        click.echo(f"== {found.hostname}: console (from the cloud) ==")
        click.echo("\n".join(found.console.splitlines()[-lines:]) or "(empty)")
    remote = [name for name in wanted if name != "console"]
    if not remote:
        return int(ExitStatus.OK)
    from drbootstrap.ssh import run_command

    for name in remote:
        click.echo(f"== {found.hostname}: {name} ({paths[name]}) ==")
        try:
            result = run_command(found.target, found.tail_command(name, follow=False, lines=lines), timeout=30)
        except DrbError as error:
            click.echo(f"(not reachable over SSH: {error})")
            return int(error.exit_status)
        click.echo(result.stdout.rstrip("\n"))
    return int(ExitStatus.OK)


def _openssh(target: SshTarget, command: str, *, tty: bool) -> int:
    """Run the OpenSSH client trusting only the pinned host key (a 0600 known_hosts of our own)."""
    from drbootstrap.ssh import known_hosts_text, openssh_argv

    with tempfile.TemporaryDirectory(prefix="drb-ssh-") as scratch:
        known_hosts = Path(scratch) / "known_hosts"
        known_hosts.write_text(known_hosts_text(target))
        try:
            return subprocess.run(openssh_argv(target, known_hosts, command, tty=tty), check=False).returncode
        except KeyboardInterrupt:
            return int(ExitStatus.OK)
        except FileNotFoundError:
            from drbootstrap.errors import PrerequisiteError

            raise PrerequisiteError("the OpenSSH client `ssh` is not installed",
                                    hint="install it (Debian: openssh-client)") from None
