"""Inputs too big, too deep or not files at all: one located line, exit 3, fast.

The committed corpus (tests/specs/invalid/) holds the small bad inputs; these are generated here
because they are megabytes, or are not regular files (a directory, a FIFO, a symlink loop).
"""

import os
import time
from pathlib import Path

import pytest

from drbootstrap.exit_status import ExitStatus
from drbootstrap.spec.groups import find_cycles
from drbootstrap.spec.limits import MAX_CHARS, MAX_DEPTH, MAX_GROUPS, MAX_SCALAR_CHARS, MAX_SPEC_BYTES, MAX_VALUES

SPEC_HEAD = "environment: demo\ndomain: demo.internal\nprovider: {name: local}\n"


def refuse(cli, path: Path) -> str:
    """Run `validate PATH`; assert a clean refusal within a second of CPU; return its one line."""
    started = time.process_time()
    result = cli("validate", str(path))
    cpu = time.process_time() - started
    assert result.exit_code == ExitStatus.INVALID_SPEC, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert cpu < 2.0, f"took {cpu:.2f} s of CPU to refuse"  # was minutes (the alias bomb)
    return result.stderr.rstrip("\n")


def test_twenty_thousand_levels_of_nesting_are_refused_at_the_first_level_too_deep(cli, tmp_path):
    spec = tmp_path / "deep.yaml"
    spec.write_text("environment: " + "[" * 20_000 + "]" * 20_000 + "\n")
    # the root mapping is level 1, so the first list beyond the limit opens at column 14 + 63
    assert refuse(cli, spec) == (
        f"{spec}:1:{14 + MAX_DEPTH - 1}: YAML nested more than {MAX_DEPTH} levels deep (flatten the document)"
    )


def test_deep_nesting_of_mappings_is_refused_too(cli, tmp_path):
    spec = tmp_path / "deep.yaml"
    spec.write_text("{a: " * 20_000 + "1" + "}" * 20_000 + "\n")
    assert "nested more than" in refuse(cli, spec)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(cli, tmp_path):
    spec = tmp_path / "huge.yaml"
    spec.write_text(SPEC_HEAD + "master: {hostname: " + "x" * (MAX_SPEC_BYTES + 10) + "}\n")  # one huge line
    assert refuse(cli, spec) == (
        f"{spec}:1:1: the spec is more than {MAX_SPEC_BYTES} bytes "
        "(a spec is a few kilobytes: check that this is the right file)"
    )


def test_a_value_over_the_length_limit_is_refused_where_it_starts(cli, tmp_path):
    spec = tmp_path / "long.yaml"
    spec.write_text(SPEC_HEAD + "master:\n  hostname: " + "x" * (MAX_SCALAR_CHARS + 1) + "\n")
    assert refuse(cli, spec) == (
        f"{spec}:5:13: a value of {MAX_SCALAR_CHARS + 1} characters, over the limit of {MAX_SCALAR_CHARS} "
        "(shorten it; long text belongs in a file the spec references)"
    )


def test_a_document_with_too_many_values_is_refused_at_the_first_value_over(cli, tmp_path):
    spec = tmp_path / "many.yaml"
    spec.write_text("x: [" + ",".join(["1"] * MAX_VALUES) + "]\n")
    line = refuse(cli, spec)
    assert line.startswith(f"{spec}:1:")
    assert line.endswith(f": the document has more than {MAX_VALUES} values (a spec is a few hundred values)")


def test_aliases_of_one_long_value_are_refused_by_their_characters(cli, tmp_path):
    # 9,000 aliases of a 16,000-character value: few values, 144 MB of text once expanded;
    # it took 37 s and 480 MB to list 9,000 problems before the character budget
    spec = tmp_path / "long-aliases.yaml"
    spec.write_text(SPEC_HEAD + "long: &a " + "x" * 16_000 + "\nnodes:\n  - role: web\n    hostnames: ["
                    + ",".join(["*a"] * 9_000) + "]\n")
    line = refuse(cli, spec)
    assert line.startswith(f"{spec}:7:")
    assert line.endswith(f": with its aliases expanded the document has more than {MAX_CHARS} characters of values "
                         "(write the values out instead of repeating them through aliases)")


def test_a_directory_given_as_the_spec_is_refused(cli, tmp_path):
    assert (
        refuse(cli, tmp_path)
        == f"{tmp_path}:1:1: the spec is a directory, not a file (give the path of a regular file)"
    )


@pytest.mark.timeout(10)  # opening a FIFO for reading blocks until a writer comes: it must not
def test_a_fifo_given_as_the_spec_is_refused_without_waiting_for_a_writer(cli, tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    assert refuse(cli, fifo) == (
        f"{fifo}:1:1: the spec is a FIFO (named pipe), not a file (give the path of a regular file)"
    )


def test_a_spec_through_a_symlink_loop_is_refused(cli, tmp_path):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    assert refuse(cli, tmp_path / "a.yaml") == (
        f"{tmp_path / 'a.yaml'}:1:1: cannot read the spec: Too many levels of symbolic links "
        "(check the path and its permissions)"
    )


def test_a_missing_spec_is_refused_as_an_invalid_input(cli, tmp_path):
    assert refuse(cli, tmp_path / "nope.yaml") == (
        f"{tmp_path / 'nope.yaml'}:1:1: cannot read the spec: No such file or directory "
        "(check the path and its permissions)"
    )


def test_plan_refuses_the_same_inputs(cli, tmp_path):
    spec = tmp_path / "deep.yaml"
    spec.write_text("environment: " + "[" * 20_000 + "]" * 20_000 + "\n")
    result = cli("plan", str(spec))
    assert result.exit_code == ExitStatus.INVALID_SPEC
    assert "nested more than" in result.stderr


def chain_of_groups(count: int) -> str:
    groups = "".join(f"  - {{role: r{i}, hostnames: [h{i}], after: [r{i + 1}]}}\n" for i in range(count - 1))
    return (SPEC_HEAD.replace("{name: local}", "{name: local, network: 10.0.0.0/16}") + "nodes:\n" + groups
            + f"  - {{role: r{count - 1}, hostnames: [h{count - 1}]}}\n")


def test_thousands_of_groups_chained_by_after_are_refused_not_a_recursion_error(cli, tmp_path):
    spec = tmp_path / "chain.yaml"
    spec.write_text(chain_of_groups(2_500))  # was: internal error: RecursionError (exit 70)
    assert refuse(cli, spec) == (
        f"{spec}:4:1: nodes: 2500 groups, over the limit of {MAX_GROUPS} "
        "(put nodes of one role in one group (hostnames: [...] or count:))"
    )


def test_the_longest_allowed_after_chain_validates_and_plans(cli, tmp_path):
    spec = tmp_path / "chain.yaml"
    spec.write_text(chain_of_groups(MAX_GROUPS))
    result = cli("validate", str(spec))
    assert result.exit_code == 0, result.stderr
    assert f"valid ({MAX_GROUPS + 1} nodes in {MAX_GROUPS} waves)" in result.stdout


def test_cycle_search_walks_a_long_chain_without_recursion():
    chain = {f"r{i}": [f"r{i + 1}"] for i in range(20_000)}
    chain["r20000"] = ["r19990"]
    assert find_cycles(chain) == [[f"r{i}" for i in range(19_990, 20_001)]]
