"""Time to refuse hostile inputs: `drbootstrap validate` as a user runs it, one fresh process each.

Each must exit 3 with one located line in under a second (the alias bomb used to run for minutes;
the 20,000-deep file ended in an internal error).

Run: python -m pytest tests/bench/bench_inputs.py -s
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drbootstrap.exit_status import ExitStatus
from drbootstrap.spec.limits import MAX_SPEC_BYTES, MAX_VALUES

RUNS = 5
BUDGET_SECONDS = 1.0

pytestmark = pytest.mark.bench


def alias_bomb() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


INPUTS = {
    "alias bomb (9 levels x 10 aliases, 520 bytes)": alias_bomb(),
    "nested 20,000 levels deep": "environment: " + "[" * 20_000 + "]" * 20_000 + "\n",
    "one line just over the size limit": "environment: " + "x" * MAX_SPEC_BYTES + "\n",
    "a flat list just over the value limit": "x: [" + ",".join(["1"] * MAX_VALUES) + "]\n",
}


@pytest.mark.parametrize("name", list(INPUTS))
def test_hostile_input_is_refused_in_under_a_second(name, tmp_path: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(INPUTS[name])
    command = [sys.executable, "-m", "drbootstrap", "validate", str(spec)]
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        timings.append(time.perf_counter() - started)
        assert result.returncode == ExitStatus.INVALID_SPEC
        assert len(result.stderr.splitlines()) == 1, result.stderr
    median = statistics.median(timings)
    print(f"\n{name}: median {median * 1000:.0f} ms over {RUNS} runs (min {min(timings) * 1000:.0f}, "
          f"max {max(timings) * 1000:.0f}): {result.stderr.strip()[len(str(spec)) + 1:][:90]}")
    assert median < BUDGET_SECONDS
