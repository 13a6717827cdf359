"""Benchmark: application dumps through the bucket on the local cloud, the user's path with the
spec's defaults: `drbootstrap backup` (the dump spooled on db01, streamed over the broker in
128 KiB chunks into libcloud's local storage) and `up --redo restore` (db01 fetches it over the
one-shot URL, checks its digest, restores it), for a SQLite database of DRB_BENCH_DUMP_MB (32) MB.

    python -m pytest tests/bench/bench_dumps.py -s      (root)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.integration.buckets.conftest import bucket_environment, database, sql
from tests.integration.up.conftest import E2E_GATE, tear_down

pytestmark = [E2E_GATE]
MEGABYTES = int(os.environ.get("DRB_BENCH_DUMP_MB", "32"))


def _timed(env, *args: str) -> tuple[float, int | None]:
    """Wall seconds and (with GNU time) the command's peak resident size in KiB."""
    gnu_time = os.path.exists("/usr/bin/time")
    prefix = ["/usr/bin/time", "-f", "%M"] if gnu_time else []
    started = time.monotonic()
    done = subprocess.run([*prefix, sys.executable, "-m", "drbootstrap", *args], env=env.env(), capture_output=True,
                          text=True, timeout=1800, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    peak = int(done.stderr.strip().splitlines()[-1]) if gnu_time else None
    return seconds, peak


def test_dump_and_restore_throughput():
    env = bucket_environment("benchdump", lambda home: (
        f"buckets: {{driver: local, path: {home}/buckets, container: backups}}"))
    try:
        assert env.cli("up", str(env.spec_file)).returncode == 0
        rows = MEGABYTES * 1024  # rows of about 1 KiB
        sql(env, f"CREATE TABLE t (v TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                 f"WHERE i < {rows}) INSERT INTO t SELECT hex(randomblob(500)) FROM n;")
        size = int(env.in_node("db01", f"stat -c %s {database(env)}"))  # the volume is mounted in the node
        backup_s, backup_kib = _timed(env, "backup", str(env.spec_file))
        env.in_node("db01", f"rm -f {database(env)}")  # so that the count below proves the restore
        restore_s, _ = _timed(env, "up", str(env.spec_file), "--redo", "restore")
        dumped = sum(p.stat().st_size for p in (env.home / "buckets").rglob("*.dump"))
        assert sql(env, "SELECT count(*) FROM t;") == str(rows)
        print(f"\ndatabase {size / 2**20:.1f} MiB, dump {dumped / 2**20:.1f} MiB; "
              f"backup {backup_s:.1f} s ({dumped / 2**20 / backup_s:.1f} MiB/s), peak RSS "
              f"{backup_kib or 0} KiB; up --redo restore {restore_s:.1f} s; load {os.getloadavg()[0]:.1f}")
    finally:
        tear_down(env)
