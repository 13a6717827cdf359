"""One command at a time per environment: a second holder is refused with the holder named; the lock
of a process that died is taken over; `status` needs no lock; `backup` holds it (and failover's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from drbootstrap.environment_lock import EnvironmentBusy, hold_environment
from drbootstrap.exit_status import ExitStatus
from drbootstrap.paths import EnvironmentPaths
from tests.support.prereq import REPO_ROOT


def test_a_second_holder_is_refused_with_the_holder_named_and_the_busy_exit_status(tmp_path):
    paths = EnvironmentPaths(tmp_path, "prod")
    with hold_environment(paths, "up") as held:
        assert held.holder.pid == os.getpid() and held.taken_over is None
        with pytest.raises(EnvironmentBusy) as refused:
            with hold_environment(paths, "down"):
                pass
    error = refused.value
    assert error.exit_status is ExitStatus.BUSY == 10
    assert f"pid {os.getpid()} on " in str(error) and "`up`" in str(error) and "since " in str(error)
    assert "down refused" in str(error) and "\n" not in str(error)
    assert oct(paths.lock.stat().st_mode & 0o777) == "0o600"


def test_a_released_lock_is_free_and_names_no_previous_holder(tmp_path):
    paths = EnvironmentPaths(tmp_path, "prod")
    with hold_environment(paths, "up"):
        pass
    with hold_environment(paths, "up") as again:
        assert again.taken_over is None


def test_the_lock_of_a_killed_holder_is_taken_over_and_names_it(tmp_path):
    paths = EnvironmentPaths(tmp_path, "prod")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from drbootstrap.environment_lock import hold_environment
        from drbootstrap.paths import EnvironmentPaths
        with hold_environment(EnvironmentPaths(Path({str(tmp_path)!r}), "prod"), "up"):
            print("held", flush=True)
            time.sleep(60)
        """)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(EnvironmentBusy, match=f"pid {holder.pid} "):
            with hold_environment(paths, "up"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    with hold_environment(paths, "up") as held:
        assert held.taken_over is not None and held.taken_over.pid == holder.pid
        assert held.taken_over.command == "up"


def test_up_and_down_are_refused_while_the_environment_is_held_and_status_is_not(world_paths):
    from drbootstrap.executor import lifecycle

    spec, paths = world_paths
    with hold_environment(paths, "up"):
        with pytest.raises(EnvironmentBusy):
            lifecycle.up(spec, paths.state_dir)
        with pytest.raises(EnvironmentBusy):
            lifecycle.down(spec, paths.state_dir)
        assert lifecycle.status(spec, paths.state_dir, ping=False).environment == "demo"


@pytest.fixture
def world_paths(monkeypatch, tmp_path):
    from drbootstrap.executor import lifecycle
    from tests.unit.executor_fakes import FakeCloud, load_spec_text, make_provider

    spec = load_spec_text(monkeypatch)
    cloud = FakeCloud()
    monkeypatch.setattr(
        lifecycle, "provider_for", lambda spec, paths, *a, **k: make_provider(spec, paths.state_dir, cloud)
    )
    return spec, EnvironmentPaths(tmp_path, spec.environment)


@pytest.mark.parametrize("holder", ["up", "failover"])
def test_a_backup_is_refused_while_the_environment_or_its_failover_is_held_naming_the_holder(
        world_paths, monkeypatch, cli, holder):
    from drbootstrap.executor import build

    spec, paths = world_paths
    monkeypatch.setattr(build, "provider_for", lambda *a, **k: pytest.fail("a refused backup asked the cloud"))
    spec_file = paths.state_dir / "env.yaml"
    from tests.unit.executor_fakes import SPEC

    spec_file.write_text(SPEC)
    lock = paths.failover_lock if holder == "failover" else None
    with hold_environment(paths, holder, lock=lock):
        result = cli("backup", str(spec_file), "--state-dir", str(paths.state_dir))
    assert result.exit_code == ExitStatus.BUSY == 10, result.stderr
    assert f"`{holder}` (pid {os.getpid()} on " in result.stderr and "backup refused" in result.stderr


def test_up_and_failover_are_refused_while_a_backup_holds_the_environment(world_paths, monkeypatch):
    from drbootstrap.backups import take
    from drbootstrap.executor import lifecycle

    spec, paths = world_paths
    refused = []

    def back_up_meanwhile(*args, **kwargs):
        with pytest.raises(EnvironmentBusy, match=r"`backup` .*; up refused"):
            lifecycle.up(spec, paths.state_dir)
        refused.append("up")
        with pytest.raises(EnvironmentBusy, match=r"`backup` .*; failover refused"):
            with hold_environment(paths, "failover", lock=paths.failover_lock):  # as run_switch takes it
                pass
        refused.append("failover")
        raise EnvironmentBusy("stop here")

    monkeypatch.setattr(take, "_take_backups", back_up_meanwhile)
    with pytest.raises(EnvironmentBusy, match="stop here"):
        take.take_backups(spec, paths.state_dir)
    assert refused == ["up", "failover"]
    lifecycle.down(spec, paths.state_dir)  # released after
