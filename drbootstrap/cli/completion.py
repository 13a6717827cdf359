"""`drbootstrap completion bash|zsh|fish`: the shell's completion script (click's), and the
completions drbootstrap adds to click's own: node hostnames read from the spec on the command line."""

from __future__ import annotations

from pathlib import Path

import click

SHELLS = ("bash", "zsh", "fish")


def spec_hostnames(spec_file: object, incomplete: str) -> list[str]:
    """The hostnames of SPEC_FILE's nodes that start with INCOMPLETE; none when it does not load."""
    if not spec_file:
        return []
    try:
        from drbootstrap.plan import build_plan
        from drbootstrap.spec import load_spec

        names = [node.hostname for node in build_plan(load_spec(Path(str(spec_file)), resolve_secrets=False)).nodes()]
    except Exception:  # noqa: BLE001 - a completion must never print an error into the shell
        return []
    last = incomplete.rsplit(",", 1)  # --only takes comma-separated names
    prefix = last[0] + "," if len(last) == 2 else ""
    return [prefix + name for name in names if name.startswith(last[-1])]


def spec_on_command_line(ctx: click.Context) -> object:
    """FILE as parsed, or (an option still waiting for its value leaves the line unparsed) the first
    word that names a YAML file."""
    return ctx.params.get("spec_file") or next(
        (word for word in ctx.args if word.endswith((".yaml", ".yml")) and Path(word).is_file()), None)


def only_hostnames(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Completion for `--only`: the spec's hostnames, and FAILED."""
    return spec_hostnames(spec_on_command_line(ctx), incomplete) + [
        word for word in ("FAILED",) if word.startswith(incomplete)]


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL; commands, options and node hostnames complete.

    \b
    Examples:
      eval "$(drbootstrap completion bash)"           # in ~/.bashrc
      eval "$(drbootstrap completion zsh)"            # in ~/.zshrc
      drbootstrap completion fish > ~/.config/fish/completions/drbootstrap.fish
    """
    from click.shell_completion import get_completion_class

    from drbootstrap.cli.main import cli

    shell_class = get_completion_class(shell)
    assert shell_class is not None  # every name in SHELLS is one of click's
    click.echo(shell_class(cli, {}, "drbootstrap", "_DRBOOTSTRAP_COMPLETE").source())
