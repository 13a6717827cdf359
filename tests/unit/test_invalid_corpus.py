"""Every spec under tests/specs/invalid/ fails `validate` with exit 3 and exactly its expected lines."""

from pathlib import Path

import pytest

from drbootstrap.exit_status import ExitStatus
from tests.support.prereq import REPO_ROOT

CORPUS = REPO_ROOT / "tests" / "specs" / "invalid"
CASES = sorted(CORPUS.glob("*.yaml"))


def test_the_corpus_has_at_least_thirty_cases_each_with_expected_output():
    assert len(CASES) >= 30
    for case in CASES:
        assert case.with_suffix(".expected").is_file(), f"{case.name} has no .expected file"


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_invalid_spec_is_reported_with_exact_located_lines(case: Path, cli, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # the expected lines name the file relative to the checkout
    monkeypatch.delenv("DRB_CORPUS_UNSET_VARIABLE", raising=False)
    relative = case.relative_to(REPO_ROOT)

    result = cli("validate", str(relative))

    assert result.exit_code == ExitStatus.INVALID_SPEC
    assert result.stderr == case.with_suffix(".expected").read_text()
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for line in result.stderr.splitlines():
        assert line.startswith(f"{relative}:")
