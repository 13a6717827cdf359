"""The journal survives a restart, is private, and never loses a completed step."""

import json
import stat

import pytest

from drbootstrap.journal import Journal, JournalError, Step, StepState
from drbootstrap.paths import EnvironmentPaths


def test_completed_steps_survive_reopening(tmp_path):
    journal = Journal.open(tmp_path, "prod")
    journal.node("db01", role="db")
    journal.update_node("db01", provider_id="i-1", client_token="tok-0", address="10.0.0.5")
    journal.start_step("db01", Step.LAUNCH)
    journal.finish_step("db01", Step.LAUNCH)
    journal.start_step("db01", Step.BOOT)

    reopened = Journal.open(tmp_path, "prod")
    node = reopened.data.nodes["db01"]
    assert node.provider_id == "i-1"
    assert node.is_done(Step.LAUNCH)
    assert not node.is_done(Step.BOOT)
    assert node.steps[Step.BOOT].state is StepState.RUNNING


def test_journal_file_is_private(tmp_path):
    journal = Journal.open(tmp_path, "prod")
    journal.node("db01", role="db")
    journal.flush()
    mode = stat.S_IMODE(EnvironmentPaths(tmp_path, "prod").journal.stat().st_mode)
    assert mode == 0o600


def test_failed_step_is_not_done_and_keeps_its_reason(tmp_path):
    journal = Journal.open(tmp_path, "prod")
    journal.node("web01", role="web")
    journal.start_step("web01", Step.PUPPET_RUN)
    journal.finish_step("web01", Step.PUPPET_RUN, ok=False, detail="catalog failed")
    node = Journal.open(tmp_path, "prod").data.nodes["web01"]
    assert not node.is_done(Step.PUPPET_RUN)
    assert node.steps[Step.PUPPET_RUN].detail == "catalog failed"


def test_forgetting_a_node_bumps_its_generation_for_a_fresh_client_token(tmp_path):
    journal = Journal.open(tmp_path, "prod")
    journal.node("db01", role="db")
    journal.update_node("db01", provider_id="i-1")
    journal.forget_node("db01")
    node = Journal.open(tmp_path, "prod").data.nodes["db01"]
    assert node.provider_id is None
    assert node.generation == 1


def test_corrupt_journal_is_a_clear_error_not_a_traceback(tmp_path):
    path = EnvironmentPaths(tmp_path, "prod").journal
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(JournalError, match="journal is not valid JSON"):
        Journal.open(tmp_path, "prod")


def test_journal_from_another_version_is_refused(tmp_path):
    path = EnvironmentPaths(tmp_path, "prod").journal
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 99, "environment": "prod", "nodes": {}}))
    with pytest.raises(JournalError, match="version 99"):
        Journal.open(tmp_path, "prod")


def test_redo_forgets_a_completed_step(tmp_path):
    journal = Journal.open(tmp_path, "prod")
    journal.node("db01", role="db")
    journal.start_step("db01", Step.CHECKS)
    journal.finish_step("db01", Step.CHECKS)
    journal.forget_step("db01", Step.CHECKS)
    assert not Journal.open(tmp_path, "prod").data.nodes["db01"].is_done(Step.CHECKS)


def test_changes_made_while_a_write_is_under_way_share_the_next_write_and_each_is_on_disk_on_return(
        tmp_path, monkeypatch):
    import json as json_module
    import threading
    import time as time_module

    from drbootstrap import journal as journal_module
    from drbootstrap.journal import Journal, Step

    writes = []

    def slow_write(path, text):
        time_module.sleep(0.02)  # a disk under load
        writes.append(text)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".tmp").write_text(text)
        path.with_suffix(".tmp").replace(path)  # atomic, as the real writer

    monkeypatch.setattr(journal_module, "write_private_file", slow_write)
    journal = Journal.open(tmp_path, "demo")
    hosts = [f"web{i:02d}" for i in range(40)]
    for host in hosts:
        journal.node(host, "web")
    seen_on_return = {}

    def finish(host):
        journal.finish_step(host, Step.LAUNCH, detail=f"{host} launched")
        seen_on_return[host] = json_module.loads(journal.path.read_text())["nodes"][host]["steps"]

    threads = [threading.Thread(target=finish, args=(h,)) for h in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(seen_on_return[h]["launch"]["detail"] == f"{h} launched" for h in hosts)  # durable on return
    assert len(writes) < len(hosts)  # shared writes, not one per change
    assert Journal.open(tmp_path, "demo").node("web07").is_done(Step.LAUNCH)


def test_a_journal_write_the_disk_refuses_is_one_clear_error_and_leaves_the_last_write(tmp_path, monkeypatch):
    import errno

    from drbootstrap import paths as paths_module
    from drbootstrap.errors import StateWriteError
    from drbootstrap.exit_status import ExitStatus

    journal = Journal.open(tmp_path, "demo")
    journal.node("db01", "db")
    journal.finish_step("db01", Step.LAUNCH, ok=True, detail="made")
    before = journal.path.read_text()
    real_fdopen = paths_module.os.fdopen

    class FullDisk:
        def __init__(self, fd, mode):
            self.handle = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(paths_module.os, "fdopen", FullDisk)
    with pytest.raises(StateWriteError) as raised:
        journal.finish_step("db01", Step.BOOT, ok=True, detail="booted")
    assert raised.value.exit_status is ExitStatus.STATE
    assert "No space left on device" in str(raised.value) and "\n" not in str(raised.value)
    assert journal.path.read_text() == before
    assert [p.name for p in journal.path.parent.iterdir() if p.name.endswith(".tmp")] == []
