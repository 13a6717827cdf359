"""Fixtures shared by every test layer. Helpers live in tests/support/."""

import os

import pytest
from hypothesis import settings

from tests.support.prereq import run_cli

# Property tests search the same examples on every run (CI must not turn red on a new random draw);
# HYPOTHESIS_PROFILE=explore searches afresh each time, for finding new problems on demand.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture
def cli():
    """The real CLI, in-process: cli("validate", path) -> CliResult(exit_code, stdout, stderr)."""
    return run_cli
