"""The drill's systemd units, as `drbootstrap schedule` writes them, pass `systemd-analyze verify`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.prereq import REPO_ROOT, require_binary

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize("every", ["weekly", "Sun *-*-* 03:00:00", "*-*-01 02:30:00"])
def test_scheduled_drill_units_pass_systemd_analyze_verify(tmp_path, every):
    require_binary("systemd-analyze")
    units = tmp_path / "units"
    schedule = [sys.executable, "-m", "drbootstrap", "schedule", str(REPO_ROOT / "examples" / "local.yaml"),
                "--every", every]
    run = subprocess.run([*schedule, "--unit-dir", str(units)], capture_output=True, text=True, timeout=60,
                         check=False)
    assert run.returncode == 0, run.stderr
    service, timer = units / "drbootstrap-drill-demo.service", units / "drbootstrap-drill-demo.timer"
    assert f"OnCalendar={every}" in timer.read_text() and " drill " in service.read_text()
    verify = subprocess.run(["systemd-analyze", "verify", str(service), str(timer)], capture_output=True, text=True,
                            timeout=120, check=False)
    ours = [line for line in verify.stderr.splitlines() if "drbootstrap-drill" in line]
    assert verify.returncode == 0 and ours == [], verify.stderr
    printed = subprocess.run([*schedule, "--print"], capture_output=True, text=True, timeout=60, check=False)
    assert printed.stdout == f"# drbootstrap-drill-demo.service\n{service.read_text()}\n" \
                             f"# drbootstrap-drill-demo.timer\n{timer.read_text()}"
