"""Faults around a running `up` that are not one master service dying: the master rebooted, the
state directory's disk full, the cloud API failing for a while.

Each run completes, or stops with a clear line and a journal from which a plain `up` completes;
never a duplicate node. Apply mode (no Puppet server): none of these faults involves it.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.integration.up.test_up_service_faults import (
    NAMES,
    SPEC,
    _assert_completes_or_resumes,
    _finish,
    _wait_until_workers_launched,
)
from tests.support.prereq import require_binary

pytestmark = [pytest.mark.integration, E2E_GATE]

FLAKY_DRIVER = "tests.support.flaky_local_cloud:FlakyLocalNodeDriver"
CLOUD_FAULTS = 6


def test_master_rebooted_mid_up():
    env = make_environment(SPEC, "upreboot")
    try:
        run = env.start("up", str(env.spec_file), "--plain")
        _wait_until_workers_launched(env, run)
        driver = env.driver()
        master = next(n for n in driver.list_nodes() if n.name == "controller")
        driver.reboot_node(master)  # the local cloud's reboot: every process stopped, booted again
        code, output = _finish(env, run)
        outcome = _assert_completes_or_resumes(env, code, output)
        assert next(n for n in env.driver().list_nodes() if n.name == "controller").extra["boot_count"] == 2
        print("master rebooted mid-up:", outcome)
    finally:
        tear_down(env)


def test_state_directory_disk_full_mid_up():
    require_binary("mount", "umount")
    env = make_environment(SPEC, "updiskfull")
    state = env.home / "state"
    state.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "drb-test-state", str(state)], check=True)
    filler = state / "filler"
    try:
        run = env.start("up", str(env.spec_file), "--plain")
        _wait_until_workers_launched(env, run)
        _fill(filler)
        code, output = _finish(env, run)
        last = output.strip().splitlines()[-1]
        assert code != 0, output[-3000:]
        assert "Traceback" not in output and "internal error" not in output, output[-3000:]
        assert "No space left on device" in last and "free space" in last, output[-3000:]
        json.loads((state / "environments" / env.name / "journal.json").read_text())  # whole, not torn
        assert not [p for p in (state / "environments" / env.name).iterdir() if p.name.endswith(".tmp")]
        filler.unlink()
        again = env.cli("up", str(env.spec_file), "--plain")
        assert again.returncode == 0, f"first run: {last}\nsecond run:\n{again.stdout[-3000:]}{again.stderr[-2000:]}"
        assert env.live_hostnames() == NAMES
        assert sorted(n.name for n in env.driver().list_nodes()) == NAMES
        print(f"state disk full mid-up: stopped with exit {code} ({last}); after freeing space a plain up completed")
    finally:
        filler.unlink(missing_ok=True)
        try:
            tear_down(env)
        finally:
            _unmount(state)
            subprocess.run(["rm", "-rf", str(env.home)], check=False)


def test_cloud_api_failing_with_500s_and_resets_for_a_while(monkeypatch):
    flaky = f'max_parallel: 8, extra: {{driver_class: "{FLAKY_DRIVER}"}},'
    env = make_environment(SPEC.replace("max_parallel: 8,", flaky), "upflaky")
    fault_log = env.home / "cloud-faults.log"
    try:
        monkeypatch.setenv("DRB_TEST_CLOUD_FAULTS", str(CLOUD_FAULTS))
        monkeypatch.setenv("DRB_TEST_CLOUD_FAULT_LOG", str(fault_log))
        run = env.start("up", str(env.spec_file), "--plain")
        code, output = _finish(env, run)
        faults = fault_log.read_text().splitlines()
        assert len(faults) == CLOUD_FAULTS and "create_node lost" in faults, faults
        assert code == 0, output[-3000:]
        assert _assert_completes_or_resumes(env, code, output) == "completed"
        retries = [line for line in output.splitlines() if "retry" in line.lower()]
        assert retries, output[-3000:]
        print(f"cloud API failing: {len(faults)} faults ({', '.join(sorted(set(faults)))}), "
              f"{len(retries)} retry lines; the run completed, no duplicate node")
    finally:
        monkeypatch.delenv("DRB_TEST_CLOUD_FAULTS", raising=False)
        tear_down(env)


def _fill(path: Path) -> None:
    """Write until the file system says it is full."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError:
            pass


def _unmount(path: Path) -> None:
    for _ in range(10):
        if subprocess.run(["umount", str(path)], check=False, capture_output=True).returncode == 0:
            return
        time.sleep(1)
    subprocess.run(["umount", "--lazy", str(path)], check=True)
