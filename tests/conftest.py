"""Fixtures shared by every test layer. Helpers live in tests/support/."""

import pytest

from tests.support.prereq import run_cli


@pytest.fixture
def cli():
    """The real CLI, in-process: cli("validate", path) -> CliResult(exit_code, stdout, stderr)."""
    return run_cli
