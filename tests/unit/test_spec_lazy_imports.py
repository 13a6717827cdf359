"""`drbootstrap --help` stays fast: the CLI and the spec commands import nothing heavy up front."""

import subprocess
import sys

from tests.support.prereq import REPO_ROOT

HEAVY = ("libcloud", "stomp", "paramiko", "rich", "pydantic")


def modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint('\\n'.join(sys.modules))"
    output = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return {name.split(".")[0] for name in output.stdout.split()}


def test_cli_main_and_spec_commands_import_no_heavy_library():
    loaded = modules_after("import drbootstrap.cli.main, drbootstrap.cli.spec_commands")
    assert not loaded & set(HEAVY)


def test_validating_the_local_example_never_imports_libcloud_stomp_paramiko_or_rich():
    loaded = modules_after(
        "from pathlib import Path\nfrom drbootstrap.plan import build_plan\nfrom drbootstrap.spec import load_spec\n"
        "build_plan(load_spec(Path('examples/local.yaml')))"
    )
    assert "pydantic" in loaded  # the probe really loaded the spec
    assert not loaded & {"libcloud", "stomp", "paramiko", "rich"}
