"""Dumps in libcloud's local storage: db01's SQLite database dumped to the bucket, `down`, `up`:
the restore hook fetched it over a one-shot URL, its digest matched, the data is back and the
report names the dump and its age. Then a corrupted object is refused by name and the older dump
restored (fallback: older), and a dump command that fails records nothing good, naming node and why."""

from __future__ import annotations

import json

import pytest

from tests.integration.buckets.conftest import bucket_environment, flip_bytes, restore_detail, sql
from tests.integration.up.conftest import E2E_GATE, tear_down

pytestmark = [pytest.mark.integration, E2E_GATE]


@pytest.fixture(scope="module")
def env():
    environment = bucket_environment("bucketlocal", lambda home: (
        f"buckets: {{driver: local, path: {home}/buckets, container: backups, prefix: drb}}"))
    environment.bucket_dir = environment.home / "buckets"
    try:
        first = environment.cli("up", str(environment.spec_file))
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        yield environment
    finally:
        tear_down(environment)


def _dumps(env) -> list[dict]:
    listed = env.cli("backups", str(env.spec_file), "--json")
    assert listed.returncode == 0, listed.stderr
    return sorted((r for r in json.loads(listed.stdout)["backups"] if r["kind"] == "dump"),
                  key=lambda r: r["created_at"])  # oldest first


def test_a_first_build_restores_nothing_and_says_so(env):
    assert "no dump db in the bucket yet: nothing restored" in restore_detail(env)


def test_dumps_are_streamed_to_the_bucket_with_digest_size_and_node(env):
    sql(env, "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('first');")
    assert env.cli("backup", str(env.spec_file)).returncode == 0
    sql(env, "UPDATE t SET v = 'second';")
    second = env.cli("backup", str(env.spec_file))
    assert second.returncode == 0, second.stdout + second.stderr

    dumps = _dumps(env)
    assert [d["good"] for d in dumps] == [True, True]
    assert {d["hostname"] for d in dumps} == {"db01"} and dumps[0]["location"] == "bucket:backups/drb"
    newest = env.bucket_dir / "backups" / dumps[-1]["id"]
    record = json.loads(newest.with_name(newest.name + ".json").read_text())
    assert record["sha256"] == dumps[-1]["manifest_digest"] and record["size_bytes"] == newest.stat().st_size
    assert b"INSERT INTO t VALUES('second')" in newest.read_bytes()
    assert list((env.paths.nodes / "db01" / "var" / "agent-state" / "dumps").iterdir()) == []  # spool removed


def test_a_failing_dump_records_nothing_good_and_names_node_and_reason(env):
    env.in_node("db01", f"touch {env.paths.nodes / 'db01' / 'root' / 'srv' / 'db' / 'fail-dump'}")
    try:
        failed = env.cli("backup", str(env.spec_file))
    finally:
        env.in_node("db01", f"rm -f {env.paths.nodes / 'db01' / 'root' / 'srv' / 'db' / 'fail-dump'}")

    assert failed.returncode == 7, failed.stdout + failed.stderr
    assert "db01: dump db: the command exited 3 (fail-dump is present)" in failed.stdout + failed.stderr
    assert [d["good"] for d in _dumps(env)] == [True, True, False]


def test_down_then_up_restores_the_newest_dump_with_its_age_in_the_report(env):
    assert env.cli("down", str(env.spec_file), "--yes").returncode == 0
    again = env.cli("up", str(env.spec_file))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]

    assert sql(env, "SELECT v FROM t;") == "second"
    detail = restore_detail(env)
    newest = [d for d in _dumps(env) if d["good"]][-1]
    assert f"dump db {newest['id'].rsplit('/', 1)[-1]} from" in detail and "ago restored" in detail
    assert "matched" in detail


def test_a_corrupted_dump_is_refused_by_name_and_the_older_one_restored(env):
    good = [d for d in _dumps(env) if d["good"]]
    flip_bytes(env.bucket_dir / "backups" / good[-1]["id"])

    redo = env.cli("up", str(env.spec_file), "--redo", "restore")

    assert redo.returncode == 0, redo.stdout[-3000:] + redo.stderr[-3000:]
    assert sql(env, "SELECT v FROM t;") == "first"
    detail = restore_detail(env)
    assert f"refused {good[-1]['id']}: its digest does not match" in detail
    assert f"dump db {good[-2]['id'].rsplit('/', 1)[-1]} from" in detail
