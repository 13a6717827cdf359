"""CLI start-up time: `drbootstrap --help` must answer in under half a second (lazy imports).

Run: python -m pytest tests/bench/bench_cli_startup.py -s
"""

import statistics
import subprocess
import sys
import time

import pytest

from tests.support.prereq import REPO_ROOT

RUNS = 9
HELP_BUDGET_SECONDS = 0.5

pytestmark = pytest.mark.bench


def median_seconds(*args: str) -> tuple[float, list[float]]:
    """Median wall time of `python -m drbootstrap ARGS` over RUNS fresh processes (one warm-up)."""
    command = [sys.executable, "-m", "drbootstrap", *args]
    subprocess.run(command, cwd=REPO_ROOT, capture_output=True, check=True)  # warm the page cache
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO_ROOT, capture_output=True, check=True)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), timings


def test_help_answers_in_under_half_a_second():
    median, timings = median_seconds("--help")
    print(
        f"\n`python -m drbootstrap --help`: median {median * 1000:.0f} ms over {RUNS} runs "
        f"(min {min(timings) * 1000:.0f}, max {max(timings) * 1000:.0f})"
    )
    assert median < HELP_BUDGET_SECONDS


def test_validate_local_example_time():
    median, timings = median_seconds("validate", "examples/local.yaml")
    print(
        f"\n`python -m drbootstrap validate examples/local.yaml`: median {median * 1000:.0f} ms over {RUNS} runs "
        f"(min {min(timings) * 1000:.0f}, max {max(timings) * 1000:.0f})"
    )
    assert median < 2.0
