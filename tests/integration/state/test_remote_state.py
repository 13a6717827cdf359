"""Remote (s3) state against a real moto S3 server, whose conditional writes are its own: the lease
(one holder, the holder named, take-over only after expiry and never of a live holder), fencing of
an earlier holder's journal writes, an endpoint failing for a while or for good, sealed keys, and
migration of a local environment."""

from __future__ import annotations

import json
import threading
import time

import pytest

from drbootstrap.environment_lock import EnvironmentBusy
from drbootstrap.errors import FencedError
from drbootstrap.exit_status import ExitStatus
from drbootstrap.journal import Journal
from drbootstrap.paths import EnvironmentPaths, write_private_file
from drbootstrap.plan import Step
from drbootstrap.state.lease import read_lease, take_lease
from drbootstrap.state.migrate import migrate_to_s3
from drbootstrap.state.remote import JOURNAL_NAME, RemoteState
from drbootstrap.state.s3 import StateUnreachable
from tests.integration.state.conftest import all_objects, s3_block, settings, versions
from tests.support.prereq import run_cli
from tests.support.s3_fault_proxy import FLAKY, FORWARD, SILENT, s3_fault_proxy

pytestmark = pytest.mark.integration
ENV = "prod"


def _session(tmp_path, name: str, state, *, take_over: bool = False):
    """What `up` does before its run: take the lease, make the working copy, attach the journal."""
    paths = EnvironmentPaths(tmp_path / name, ENV)
    remote = RemoteState(state, paths)
    lease = take_lease(remote.store, "up", seconds=state.lease_seconds, take_over=take_over)
    restored = remote.restore_working_copy()
    journal = Journal.at(paths)
    journal.replica = remote.replica(lease, restored)
    return remote, lease, journal


def _remote_journal(client, bucket: str) -> dict:
    return json.loads(client.get_object(Bucket=bucket, Key=f"teams/ops/{ENV}/{JOURNAL_NAME}")["Body"].read())


def test_one_holder_at_a_time_the_other_refused_naming_it(moto, bucket, state_key, tmp_path):
    name, client = bucket
    state = settings(name, moto.url)
    remote, lease, _ = _session(tmp_path, "a", state)
    try:
        with pytest.raises(EnvironmentBusy) as refused:
            _session(tmp_path, "b", state)
        message = str(refused.value)
        assert f"pid {lease.record.pid} on {lease.record.host}" in message and lease.record.user in message
        assert "since" in message and refused.value.exit_status is ExitStatus.BUSY
        assert "held by" in read_lease(remote.store).describe()
    finally:
        lease.release()
    _, second, _ = _session(tmp_path, "b", state)  # released: free at once, generation goes on
    assert second.generation == lease.generation + 1
    second.release()


def test_a_live_holder_is_never_taken_over_an_expired_one_only_with_take_over(moto, bucket, state_key, tmp_path):
    name, _ = bucket
    state = settings(name, moto.url, lease_seconds=5)
    _, lease, _ = _session(tmp_path, "a", state)
    lease.start_renewing()
    started = time.monotonic()
    with pytest.raises(EnvironmentBusy, match="is alive"):
        _session(tmp_path, "b", state, take_over=True)  # waits for the expiry, sees it renewed
    assert time.monotonic() - started < 12
    lease._stop.set()  # the holder stops renewing (as if killed) without releasing
    lease._thread.join()
    time.sleep(state.lease_seconds + 0.5)
    with pytest.raises(EnvironmentBusy, match="expired .* --take-over"):
        _session(tmp_path, "b", state)
    _, taken, _ = _session(tmp_path, "b", state, take_over=True)
    assert taken.generation == lease.generation + 1 and taken.taken_over is not None
    time.sleep(state.lease_seconds + 0.5)  # b stops renewing too; a scheduled drill's policy takes it
    store = RemoteState(state, EnvironmentPaths(tmp_path / "c", ENV)).store
    by_policy = take_lease(store, "drill", seconds=state.lease_seconds, take_over=False, take_expired=True)
    assert by_policy.generation == taken.generation + 1 and by_policy.taken_over.pid == taken.record.pid
    by_policy.release()


def test_an_earlier_holder_cannot_write_a_single_entry_once_a_newer_one_took_over(moto, bucket, state_key, tmp_path):
    name, client = bucket
    state = settings(name, moto.url, lease_seconds=5)
    _, lease_a, journal_a = _session(tmp_path, "a", state)  # not renewing: as if paused
    journal_a.node("web01", "web")
    journal_a.start_step("web01", Step.LAUNCH)
    time.sleep(state.lease_seconds + 0.5)
    _, lease_b, journal_b = _session(tmp_path, "b", state, take_over=True)
    journal_b.finish_step("web01", Step.LAUNCH, detail="by b")
    written_before = len(versions(client, name, f"teams/ops/{ENV}/{JOURNAL_NAME}"))
    with pytest.raises(FencedError, match="lost its lease") as fenced:
        journal_a.finish_step("web01", Step.LAUNCH, detail="by a")
    assert fenced.value.exit_status == 16 and "\n" not in str(fenced.value)
    lease_a._deadline = time.monotonic() + 60  # even a holder whose clock says it still holds it:
    lease_a._fenced = None
    with pytest.raises(FencedError, match="written by generation"):
        journal_a.finish_step("web01", Step.LAUNCH, detail="by a")  # the journal's If-Match refuses it
    history = versions(client, name, f"teams/ops/{ENV}/{JOURNAL_NAME}")
    assert len(history) == written_before
    assert _remote_journal(client, name)["nodes"]["web01"]["steps"]["launch"]["detail"] == "by b"
    lease_b.release()


def test_an_endpoint_failing_for_a_while_delays_writes_and_loses_none(moto, bucket, state_key, tmp_path):
    name, client = bucket
    with s3_fault_proxy(moto.port) as proxy:
        state = settings(name, proxy.url, retry_seconds=30)
        _, lease, journal = _session(tmp_path, "a", state)
        journal.node("web01", "web")
        proxy.set_mode(FLAKY)
        threading_timer = threading.Timer(3.0, proxy.set_mode, (FORWARD,))
        threading_timer.start()
        started = time.monotonic()
        for step in (Step.LAUNCH, Step.REGISTER_NAME, Step.BOOT):
            journal.start_step("web01", step)
            journal.finish_step("web01", step, detail=f"{step} done")
        threading_timer.join()
        assert time.monotonic() - started >= 2.5 and proxy.count("500") and proxy.count("reset")
        lease.release()
    steps = _remote_journal(client, name)["nodes"]["web01"]["steps"]
    assert {s: steps[s]["state"] for s in steps} == {"launch": "done", "register_name": "done", "boot": "done"}


def test_an_endpoint_that_never_answers_fails_in_one_line_and_the_journal_resumes(moto, bucket, state_key, tmp_path):
    name, client = bucket
    with s3_fault_proxy(moto.port) as proxy:
        state = settings(name, proxy.url, retry_seconds=3, lease_seconds=30)
        _, lease, journal = _session(tmp_path, "a", state)
        journal.node("web01", "web")
        journal.start_step("web01", Step.LAUNCH)
        proxy.set_mode(SILENT)
        with pytest.raises(StateUnreachable) as failed:
            journal.finish_step("web01", Step.LAUNCH, detail="launched")
        assert failed.value.exit_status is ExitStatus.STATE and "\n" not in str(failed.value)
        assert "no good answer" in str(failed.value) and "run the command again" in str(failed.value)
        proxy.set_mode(FORWARD)
        lease.release()  # the endpoint answers again; the same operator runs again
        _, again, resumed = _session(tmp_path, "a", state)
        assert resumed.data.nodes["web01"].steps["launch"].state == "done"  # the local copy's last write
        assert _remote_journal(client, name)["nodes"]["web01"]["steps"]["launch"]["state"] == "done"
        again.release()


def test_keys_are_sealed_in_the_bucket_and_a_fresh_machine_gets_them_back(moto, bucket, state_key, tmp_path):
    name, client = bucket
    state = settings(name, moto.url)
    remote, lease, journal = _session(tmp_path, "a", state)
    secrets_made = {remote.paths.psk: "f" * 64 + "\n",
                    remote.paths.ssh_private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
                    remote.paths.keys / "operator.key": "c2VjcmV0LXNpZ25pbmcta2V5\n"}
    for path, value in secrets_made.items():
        write_private_file(path, value)
    journal.node("web01", "web")
    journal.flush()  # a journal write sends the keys made since the last one, first
    lease.release()
    for key, bodies in all_objects(client, name).items():
        for body in bodies:
            for value in secrets_made.values():
                for line in value.strip().splitlines():
                    assert line.encode() not in body, f"{key} holds a secret in clear text"
            assert state_key.encode() not in body
    _, again, _ = _session(tmp_path, "fresh", state)
    fresh = EnvironmentPaths(tmp_path / "fresh", ENV)
    for path, value in secrets_made.items():
        restored = fresh.root / path.relative_to(remote.paths.root)
        assert restored.read_text() == value and restored.stat().st_mode & 0o077 == 0
    again.release()


def test_migrate_moves_a_local_environment_and_never_overwrites_a_remote_one(moto, bucket, state_key, tmp_path):
    name, client = bucket
    state = settings(name, moto.url)
    local = EnvironmentPaths(tmp_path / "old", ENV)
    journal = Journal.at(local)
    journal.node("controller", "master")
    journal.finish_step("controller", Step.LAUNCH, detail="launched")
    write_private_file(local.psk, "a" * 64 + "\n")
    write_private_file(local.report_markdown, "# report\n")
    moved = migrate_to_s3(state, local)
    assert moved.journal and moved.keys == ["psk"] and moved.reports == ["report.md"]
    with pytest.raises(Exception, match="already holds a journal"):
        migrate_to_s3(state, local)
    _, lease, resumed = _session(tmp_path, "new", state)
    assert resumed.data.nodes["controller"].is_done(Step.LAUNCH)
    assert (tmp_path / "new" / "environments" / ENV / "psk").read_text() == "a" * 64 + "\n"
    lease.release()


def test_state_migrate_through_the_cli_then_status_reads_the_bucket(moto, bucket, state_key, tmp_path):
    name, _ = bucket
    spec = tmp_path / "env.yaml"
    spec.write_text(f"environment: {ENV}\ndomain: prod.internal\nprovider: {{name: local}}\n"
                    + s3_block(name, moto.url).replace("backend: s3", "backend: local"))
    local = EnvironmentPaths(tmp_path / "old", ENV)
    journal = Journal.at(local)
    journal.node("controller", "master")
    journal.finish_step("controller", Step.LAUNCH, detail="launched")
    write_private_file(local.psk, "b" * 64 + "\n")
    moved = run_cli("state", "migrate", str(spec), "--state-dir", str(tmp_path / "old"), "--to", f"s3://{name}/moved")
    assert moved.exit_code == 0, moved.stderr
    assert f"now in s3://{name}/moved/{ENV}" in moved.stdout and "--state s3://" in moved.stdout
    again = run_cli("state", "migrate", str(spec), "--state-dir", str(tmp_path / "old"), "--to", f"s3://{name}/moved")
    assert again.exit_code == 1 and "already holds a journal" in again.stderr and again.stderr.count("\n") == 1
    wrong = run_cli("state", "migrate", str(spec), "--to", "local")
    assert wrong.exit_code == 1 and "only s3" in wrong.stderr
    shown = run_cli("status", str(spec), "--state-dir", str(tmp_path / "fresh"), "--state", f"s3://{name}/moved",
                    "--no-ping", "--json")
    assert json.loads(shown.stdout)["holder"].startswith("free (last held by `state migrate`"), shown.stdout
    assert (tmp_path / "fresh" / "environments" / ENV / "psk").read_text() == "b" * 64 + "\n"
