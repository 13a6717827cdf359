"""The CLI's contract: expected errors are one line with a distinct code; bugs say they are bugs."""

import click

from drbootstrap.cli import main as cli_main
from drbootstrap.errors import PrerequisiteError
from drbootstrap.exit_status import ExitStatus


def test_help_lists_commands_and_exits_zero(cli):
    result = cli("--help")
    assert result.exit_code == 0
    assert "Usage: drbootstrap" in result.stdout


def test_unknown_command_is_a_usage_error(cli):
    result = cli("no-such-command")
    assert result.exit_code == ExitStatus.USAGE
    assert "No such command" in result.stderr


def test_expected_error_prints_one_line_with_its_exit_status(cli, monkeypatch):
    @click.command()
    def boom():
        raise PrerequisiteError("dnsmasq is not installed", hint="apt-get install dnsmasq")

    monkeypatch.setitem(cli_main.COMMANDS, "boom", ("spec_commands", "boom", "test"))
    monkeypatch.setattr(cli_main.LazyGroup, "get_command", lambda self, ctx, name: boom)
    result = cli("boom")
    assert result.exit_code == ExitStatus.PREREQUISITE
    assert result.stderr == "drbootstrap: dnsmasq is not installed (apt-get install dnsmasq)\n"


def test_unexpected_exception_is_reported_as_a_bug_without_traceback(cli, monkeypatch):
    @click.command()
    def boom():
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli_main.LazyGroup, "get_command", lambda self, ctx, name: boom)
    result = cli("boom")
    assert result.exit_code == ExitStatus.BUG
    assert "Traceback" not in result.stderr
    assert "bug in drbootstrap" in result.stderr


def test_debug_flag_shows_the_traceback(cli, monkeypatch):
    @click.command()
    def boom():
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli_main.LazyGroup, "get_command", lambda self, ctx, name: boom)
    result = cli("--debug", "boom")
    assert "Traceback" in result.stderr
