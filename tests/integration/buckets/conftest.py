"""Helpers for the bucket tests: a master and db01 on the local cloud (Puppet in apply mode: no
Puppet server to wait for), whose SQLite database is dumped to a bucket and restored from it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.integration.up.conftest import Environment, make_environment

SPEC = """\
environment: demo
domain: demo.internal
provider:
  name: local
  network: 10.213.0.0/24
master:
  puppet: {mode: apply}
BUCKETS
nodes:
  - role: db
    hostnames: [db01]
    volumes:
      - {name: data, mount: /srv/db, size_gb: 1}
    dumps:
      - name: db
        # Fails while fail-dump exists: the test of a dump command that fails.
        command: |
          if [ -e "${DRB_ROOT:-}/srv/db/fail-dump" ]; then echo "fail-dump is present" >&2; exit 3; fi
          sqlite3 "${DRB_ROOT:-}/srv/db/app.db" .dump
        restore: rm -f "${DRB_ROOT:-}/srv/db/app.db" && sqlite3 "${DRB_ROOT:-}/srv/db/app.db"
        timeout_seconds: 60
        fallback: older
    restore:
      - dump: db
"""


def bucket_environment(name: str, buckets_block: Callable[[Path], str]) -> Environment:
    """The environment, its spec's `buckets:` block made from its home directory."""
    env = make_environment(SPEC, name)
    env.spec_file.write_text(env.spec_file.read_text().replace("BUCKETS", buckets_block(env.home)))
    return env


def database(env: Environment) -> Path:
    return env.paths.nodes / "db01" / "root" / "srv" / "db" / "app.db"


def sql(env: Environment, statement: str) -> str:
    """Run STATEMENT on db01's database, inside the node."""
    return env.in_node("db01", f"sqlite3 {database(env)} {_quote(statement)}")


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def restore_detail(env: Environment) -> str:
    node = next(n for n in env.report()["nodes"] if n["hostname"] == "db01")
    return next(s["detail"] for s in node["steps"] if s["step"] == "restore")


def flip_bytes(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
