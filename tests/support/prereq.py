"""Helpers every test layer uses: the integration prerequisite gate and the in-process CLI."""

from __future__ import annotations

import io
import os
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def integration_required() -> bool:
    """CI sets DRB_REQUIRE_INTEGRATION=1: then a missing prerequisite fails instead of skipping."""
    return os.environ.get("DRB_REQUIRE_INTEGRATION") == "1"


def require(condition: bool, what: str) -> None:
    """Skip (on a laptop) or fail (in CI) when a real part this test needs is absent."""
    if condition:
        return
    if integration_required():
        pytest.fail(f"integration prerequisite missing: {what} (DRB_REQUIRE_INTEGRATION=1)")
    pytest.skip(f"prerequisite missing: {what}")


def require_root() -> None:
    require(os.geteuid() == 0, "root (namespaces, mounts, bridges)")


def require_binary(*names: str) -> None:
    for name in names:
        require(
            shutil.which(name) is not None
            or any(Path(d, name).exists() for d in ("/usr/sbin", "/sbin", "/usr/share/activemq/bin")),
            f"the `{name}` program (see .ci/install for the package)",
        )


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Drive the real CLI in-process and capture what a user would see."""
    from drbootstrap.cli.main import run

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(list(args))
    return CliResult(code, out.getvalue(), err.getvalue())
