"""Entry point: a click group whose commands are imported only when used (fast --help)."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from drbootstrap.exit_status import ExitStatus

# command name -> (module under drbootstrap.cli, attribute, one-line help shown by --help).
# Help text lives here so `drbootstrap --help` imports nothing heavy.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("spec_commands", "validate", "Check an environment spec; report every error."),
    "plan": ("spec_commands", "plan", "Show the recovery plan a spec implies (contacts nothing)."),
    "up": ("run_commands", "up", "Rebuild the environment: master, workers, names, Puppet, checks."),
    "status": ("run_commands", "status", "Show the nodes, names, agents and Puppet state of an environment."),
    "down": ("run_commands", "down", "Destroy everything the environment's journal owns."),
    "backup": ("backup_commands", "backup", "Snapshot the volumes the spec marks for backup, hooks and manifest."),
    "backups": ("backup_commands", "backups", "List the backup catalog: time, age, size, verified."),
    "failover": ("failover_commands", "failover", "Move the environment to another site: up, verify, switch DNS."),
    "failback": ("failover_commands", "failback", "Move the environment back to a site after a failover."),
    "state": ("state_commands", "state", "Move an environment's state to s3 (journal, reports, sealed keys)."),
    "drill": ("drill_commands", "drill", "Rehearse recovery under a drill name, isolated; judge it; tear it down."),
    "history": ("drill_commands", "history", "Show an environment's past drills and their trend."),
    "schedule": ("drill_commands", "schedule", "Write a systemd timer and service that run the drill."),
    "check": ("watch_commands", "check", "Monitoring plugin (Nagios conventions): one status line, exit 0-3."),
    "watch": ("watch_commands", "watch", "Keep the environment alive: resurrect dead workers, meltdown guard."),
    "local": ("local_commands", "local", "Inspect or clean up the embedded local cloud."),
    "agent": ("agent_commands", "agent", "Run the node agent (answers RPC requests over STOMP)."),
    "keygen": ("agent_commands", "keygen", "Write an ed25519 key pair for a client or an agent."),
    "ping": ("rpc_commands", "ping", "Discover agents over the broker."),
    "rpc": ("rpc_commands", "rpc", "Call AGENT ACTION key=value... on matching nodes."),
    "reboot": ("rpc_commands", "reboot", "Reboot matching nodes through their agent."),
    "puppet": ("rpc_commands", "puppet", "Run, enable, disable or query Puppet on matching nodes."),
    "ssh": ("node_commands", "ssh", "Open a shell or run a command on a node of an environment."),
    "logs": ("node_commands", "logs", "Show a node's console, boot, agent and Puppet logs."),
    "images": ("images_commands", "images", "Build the master and worker images (qcow2) from Debian packages."),
    "completion": ("completion", "completion", "Print the shell completion script (bash, zsh, fish)."),
    "schema": ("spec_commands", "schema", "Print the JSON Schema of the environment spec (for editors)."),
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._available(name)]

    def _available(self, name: str) -> bool:
        module = COMMANDS[name][0]
        return importlib.util.find_spec(f"drbootstrap.cli.{module}") is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._available(name):
            return None
        module_name, attribute, _ = COMMANDS[name]
        module = importlib.import_module(f"drbootstrap.cli.{module_name}")
        return getattr(module, attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show the full traceback of any error.")
@click.version_option(package_name="drbootstrap")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """drbootstrap: rebuild a whole server environment from nothing."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn every expected error into one line and a distinct exit code."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    args = _debug_first(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="drbootstrap", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        click.echo("drbootstrap: interrupted", err=True)
        return ExitStatus.INTERRUPTED
    except click.ClickException as usage:
        usage.show()
        return ExitStatus.USAGE
    except KeyboardInterrupt:
        click.echo("drbootstrap: interrupted", err=True)
        return ExitStatus.INTERRUPTED
    except Exception as error:  # noqa: BLE001 - the one place every error is turned into a line
        return report_error(error, debug)
    return int(result or 0)


def _debug_first(args: list[str]) -> list[str]:
    """`--debug` anywhere before a `--` is the group's option (`drbootstrap validate --debug` too)."""
    end = args.index("--") if "--" in args else len(args)
    if "--debug" not in args[:end]:
        return args
    return ["--debug", *[arg for arg in args[:end] if arg != "--debug"], *args[end:]]


def report_error(error: Exception, debug: bool) -> int:
    from drbootstrap.errors import DrbError

    if debug:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, DrbError):
        for line in str(error).splitlines() or [type(error).__name__]:
            click.echo(f"drbootstrap: {line}" if not _is_located(line) else line, err=True)
        return int(error.exit_status)
    click.echo(
        f"drbootstrap: internal error: {type(error).__name__}: {error} "
        "(this is a bug in drbootstrap; run again with --debug for the traceback and report it)",
        err=True,
    )
    return int(ExitStatus.BUG)


def _is_located(line: str) -> bool:
    """A FILE:LINE:COL: message already names its place; print it as is."""
    parts = line.split(":", 3)
    return len(parts) == 4 and parts[1].isdigit() and parts[2].isdigit()
