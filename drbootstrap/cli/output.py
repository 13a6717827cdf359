"""What every command shares when it talks to the operator: JSON output carrying a schema version,
and the confirm-or-refuse rule of destructive commands (list what goes, ask on a terminal, refuse
without one unless --yes). Any command can call these; they decide nothing about the environment.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

# Bumped when a field of any command's JSON output changes meaning or goes away (new fields do not).
SCHEMA_VERSION = 1


def with_schema_version(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with `schema_version` first, so scripts can check it before reading the rest."""
    return {"schema_version": SCHEMA_VERSION, **document}


def echo_json(document: dict[str, Any], *, indent: int | None = 2) -> None:
    """Print one JSON document (a command's result, or one event line with indent=None)."""
    click.echo(json.dumps(with_schema_version(document), indent=indent, default=str))


def confirm_or_refuse(action: str, listing: Callable[[], str], *, yes: bool, question: str,
                      nothing: str = "nothing changed") -> bool:
    """The rule of every destructive command. With `yes`: go on. Without a terminal to ask at (cron,
    CI): refuse (NotConfirmed, exit 12) having changed nothing. On a terminal: print `listing()` (what
    will go), then ask `question`.

    Returns False when the operator answered no (the caller exits 12, NOT_CONFIRMED).
    """
    from drbootstrap.errors import NotConfirmed

    if yes:
        return True
    if not sys.stdin.isatty():
        raise NotConfirmed(f"{action}: {nothing}: there is no terminal to confirm at",
                           hint="run it again with --yes to go ahead without asking")
    click.echo(listing())
    if not click.confirm(question, default=False):
        click.echo(f"drbootstrap: {nothing}")
        return False
    return True
