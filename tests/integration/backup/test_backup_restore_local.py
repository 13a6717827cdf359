"""Backups proven to restore, on the local cloud with real agents: known files and a SQLite database
on db01's volume are backed up, the environment destroyed and rebuilt from the backup, verified on
the node; `--as-of` restores an earlier backup; a snapshot whose bytes were flipped is caught at
restore and the older one restored instead; a failing pre_snapshot records no good backup while
post_snapshot still runs; a backup asked for that matches nothing is refused before any launch.

One environment (the master and db01) serves every case, in order: the machine is shared and slow.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.up.conftest import E2E_GATE, Environment, make_environment, tear_down

pytestmark = [pytest.mark.integration, E2E_GATE]

SPEC = """
environment: demo
domain: demo.internal
provider: {name: local, network: 10.213.0.0/24}
master: {hostname: controller, image: master}
nodes:
  - role: db
    hostnames: [db01]
    puppet: {classes: ["role::db"]}
    volumes:
      - name: data
        mount: /srv/db
        size_gb: 1
        backup:
          # the hooks log beside the volume (outside it, so the log is no part of the backup)
          pre_snapshot: 'echo pre >>"$DRB_VOLUME_PATH/../hooks.log"; test ! -e "$DRB_VOLUME_PATH/../fail-pre"'
          post_snapshot: 'echo post >>"$DRB_VOLUME_PATH/../hooks.log"'
          hook_timeout_seconds: 30
          fallback: older
"""


class Db:
    """db01's volume as seen inside the node: known files and a small SQLite database."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.volume = environment.paths.nodes / "db01" / "root" / "srv" / "db"

    def write(self, generation: str) -> None:
        script = self.environment.home / "write_db.py"
        script.write_text(WRITE_DB)
        self.environment.in_node("db01", f"python3 {script} {self.volume} {generation} && sync")

    def read(self) -> tuple[str, str]:
        script = self.environment.home / "read_db.py"
        script.write_text(READ_DB)
        text, row = self.environment.in_node("db01", f"python3 {script} {self.volume}").splitlines()
        return text, row


WRITE_DB = """import pathlib, sqlite3, sys
volume, generation = pathlib.Path(sys.argv[1]), sys.argv[2]
(volume / "sub").mkdir(exist_ok=True)
(volume / "sub" / "fixed.txt").write_text("the same in every backup\\n")
(volume / "known.txt").write_text(generation + "\\n")
db = sqlite3.connect(volume / "app.db")
db.execute("create table if not exists t (v text)")
db.execute("delete from t")
db.execute("insert into t values (?)", (generation,))
db.commit()
db.close()
"""
READ_DB = """import pathlib, sqlite3, sys
volume = pathlib.Path(sys.argv[1])
print((volume / "known.txt").read_text().strip())
print(sqlite3.connect(volume / "app.db").execute("select v from t").fetchone()[0])
"""


@pytest.fixture(scope="module")
def environment():
    env = make_environment(SPEC, "bkup")
    try:
        env.first_up = env.cli("up", str(env.spec_file), "--plain")
        yield env
    finally:
        tear_down(env)


def _ok(run) -> None:
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def _catalog(environment: Environment) -> list[dict]:
    run = environment.cli("backups", str(environment.spec_file), "--json")
    _ok(run)
    data = json.loads(run.stdout)
    assert data["schema_version"] == 1
    return sorted(data["backups"], key=lambda b: b["created_at"])


def _restored(environment: Environment) -> dict:
    [entry] = environment.report()["backups"]
    return entry


def test_a_first_up_starts_the_marked_volume_empty_and_says_so(environment):
    _ok(environment.first_up)
    entry = _restored(environment)
    assert entry["backup_id"] is None and entry["verified"] is None
    assert "no backup yet, started empty" in environment.first_up.stdout


def test_backup_then_down_and_up_brings_the_data_back_verified(environment):
    db = Db(environment)
    db.write("first")
    _ok(first := environment.cli("backup", str(environment.spec_file)))
    assert "db01/data: snap-" in first.stdout and " good, " in first.stdout
    environment.first_backup_done = time.time()
    time.sleep(1.5)  # backup times are whole seconds: the second is strictly later
    db.write("second")
    _ok(environment.cli("backup", str(environment.spec_file)))
    catalog = _catalog(environment)
    assert [b["good"] for b in catalog] == [True, True] and all(b["manifest_digest"] for b in catalog)
    assert all(b["environment"] == "bkup" and b["hostname"] == "db01" and b["name"] == "data" for b in catalog)
    environment.backups = [b["id"] for b in catalog]

    _ok(environment.cli("down", str(environment.spec_file), "--yes", timeout=300))
    _ok(up := environment.cli("up", str(environment.spec_file), "--plain"))
    assert db.read() == ("second", "second")
    entry = _restored(environment)
    assert entry["backup_id"] == environment.backups[1] and entry["verified"] == "ok"
    assert entry["rpo_seconds"] is not None and entry["rpo_seconds"] >= 0
    assert environment.backups[1] in environment.paths.report_markdown.read_text()
    assert f"restored from {environment.backups[1]}" in up.stdout
    assert _catalog(environment)[1]["verified_ok"] is True


def test_up_as_of_the_first_backup_brings_the_first_data_back(environment):
    _ok(environment.cli("down", str(environment.spec_file), "--yes", timeout=300))
    as_of = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(environment.first_backup_done))
    _ok(environment.cli("up", str(environment.spec_file), "--plain", "--as-of", as_of))
    assert Db(environment).read() == ("first", "first")
    entry = _restored(environment)
    assert entry["backup_id"] == environment.backups[0] and entry["verified"] == "ok"


@pytest.mark.parametrize(("args", "says"), [
    (["--as-of", "2001-01-01T00:00:00Z"], "--as-of 2001-01-01T00:00:00Z is before every backup of db01/data"),
    (["--backup", "snap-0000000000000000"], "--backup snap-0000000000000000: no backup of that id"),
    (["--backups-from", "nobody", "--as-of", "1h"], "db01/data has no backup yet in environment 'nobody'"),
])
def test_a_backup_asked_for_that_matches_nothing_is_one_line_exit_13_and_nothing_launched(environment, args, says):
    before = environment.driver().list_nodes()
    run = environment.cli("up", str(environment.spec_file), "--plain", *args)
    assert run.returncode == 13, run.stdout[-2000:] + run.stderr[-2000:]
    assert says in run.stderr and "nothing launched" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert run.stdout == ""  # not one step started
    assert sorted(n.id for n in environment.driver().list_nodes()) == sorted(n.id for n in before)


def test_a_failing_pre_snapshot_records_no_good_backup_and_post_snapshot_still_runs(environment):
    volume = Db(environment).volume
    hooks_log, marker = volume.parent / "hooks.log", volume.parent / "fail-pre"
    hooks_log.unlink(missing_ok=True)
    marker.write_text("")
    try:
        run = environment.cli("backup", str(environment.spec_file))
    finally:
        marker.unlink()
    assert run.returncode == 7, run.stdout + run.stderr
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("drbootstrap: backup of db01/data on db01 is not good: pre_snapshot failed")
    assert hooks_log.read_text().split() == ["pre", "post"]
    newest = _catalog(environment)[-1]
    assert newest["good"] is False and newest["id"] not in environment.backups


def test_a_snapshot_with_flipped_bytes_is_caught_and_the_older_backup_restored(environment):
    corrupted = environment.backups[1]
    copy = environment.home / "state" / "local-cloud" / "snapshots" / corrupted / "known.txt"
    data = bytearray(copy.read_bytes())
    data[0] ^= 0xFF  # one flipped byte in the newest good backup
    copy.write_bytes(bytes(data))
    _ok(environment.cli("down", str(environment.spec_file), "--yes", timeout=300))
    up = environment.cli("up", str(environment.spec_file), "--plain")
    _ok(up)
    assert f"after {corrupted} failed verification" in up.stdout
    entry = _restored(environment)
    assert entry["backup_id"] == environment.backups[0] and entry["verified"] == "ok"
    assert entry["failed_verification"] == [corrupted]
    assert corrupted in environment.paths.report_markdown.read_text()
    assert Db(environment).read() == ("first", "first")
    catalog = {b["id"]: b for b in _catalog(environment)}
    assert catalog[corrupted]["verified_ok"] is False and catalog[environment.backups[0]]["verified_ok"] is True
