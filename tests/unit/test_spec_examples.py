"""Every example under examples/ validates (with its credential variables set) and plans."""

import pytest

from drbootstrap.exit_status import ExitStatus
from tests.support.prereq import REPO_ROOT

EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))
# The examples' credentials are ${env:...} references: validate reads them, so tests set them.
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "DRB_TSIG_SECRET",
    "OS_USERNAME",
    "OS_PASSWORD",
)


@pytest.fixture
def credentials(monkeypatch):
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.setenv(name, f"test-value-of-{name.lower()}")


def test_the_three_documented_examples_exist():
    assert {path.name for path in EXAMPLES} >= {"local.yaml", "ec2.yaml", "openstack.yaml"}


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_validates(example, cli, credentials):
    result = cli("validate", str(example))
    assert result.exit_code == ExitStatus.OK, result.stderr
    assert result.stdout.startswith(f"{example}: valid (")


def test_local_example_reports_five_nodes_in_two_waves(cli):
    result = cli("validate", str(REPO_ROOT / "examples" / "local.yaml"))
    assert result.stdout == f"{REPO_ROOT / 'examples' / 'local.yaml'}: valid (5 nodes in 2 waves)\n"


def test_ec2_example_without_its_variables_names_each_missing_one(cli, monkeypatch):
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    result = cli("validate", str(REPO_ROOT / "examples" / "ec2.yaml"))
    assert result.exit_code == ExitStatus.INVALID_SPEC
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DRB_TSIG_SECRET"):
        assert f"environment variable {name} is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_skip_secrets_validates_the_ec2_example_without_its_variables(cli, monkeypatch):
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    result = cli("validate", "--skip-secrets", str(REPO_ROOT / "examples" / "ec2.yaml"))
    assert result.exit_code == ExitStatus.OK, result.stderr


def test_secret_values_never_reach_the_plan_output(cli, credentials):
    result = cli("plan", "--json", str(REPO_ROOT / "examples" / "ec2.yaml"))
    assert result.exit_code == ExitStatus.OK
    assert "test-value-of" not in result.stdout + result.stderr
