"""Dumps in a real S3 API (moto's server, bound to this machine's address on the environment's
bridge so that the nodes reach it): db01's SQLite database dumped, sealed at rest, with its sha256,
size and node in the object's metadata, `down`, `up`: db01 fetched it with a presigned GET, its digest matched, the
data is back, the report names the dump and its age. The bucket's credentials never reach a node:
not its user-data, its files, its processes, nor the logs, journal or report."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from drbootstrap.providers.local.netns import gateway_address
from tests.integration.buckets.conftest import bucket_environment, restore_detail, sql
from tests.integration.up.conftest import E2E_GATE, tear_down
from tests.support.moto_server import moto_server_command, running_moto_server
from tests.support.prereq import require
from tests.support.secrets_scan import KnownSecret, environment_secrets, scan_for_secrets

pytestmark = [pytest.mark.integration, E2E_GATE]
KEY_ID = "AKIA" + secrets.token_hex(8).upper()
SECRET = secrets.token_urlsafe(30)
SEALING_KEY = secrets.token_hex(32)


@pytest.fixture(scope="module")
def env():
    require(moto_server_command() is not None, "moto server (pip install 'moto[server,s3]')")
    environment = bucket_environment("buckets3", lambda home: "")
    gateway = gateway_address(environment.network)
    try:
        environment.driver().plumbing.ensure_bridge(environment.network)  # moto listens on the bridge's address
        with running_moto_server(host=gateway) as moto:
            block = (f"buckets:\n  driver: s3\n  endpoint: {moto.url}\n  container: backups\n  prefix: drb\n"
                     "  credentials: {key: '${env:DRB_TEST_BUCKET_KEY}', secret: '${env:DRB_TEST_BUCKET_SECRET}'}\n"
                     "  signed_url_seconds: 120\n  encryption_key: '${env:DRB_TEST_BUCKET_SEALING_KEY}'\n")
            text = environment.spec_file.read_text()
            environment.spec_file.write_text(text.replace("\n\nnodes:", f"\n{block}nodes:"))
            plain_env = environment.env
            # Only the CLI's own environment holds the bucket's credentials (not this test process).
            environment.env = lambda: {**plain_env(), "DRB_TEST_BUCKET_KEY": KEY_ID, "DRB_TEST_BUCKET_SECRET": SECRET,
                                       "DRB_TEST_BUCKET_SEALING_KEY": SEALING_KEY}
            environment.moto = moto
            first = environment.cli("up", str(environment.spec_file))
            assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
            yield environment
    finally:
        tear_down(environment)


def test_the_dump_lands_in_s3_with_digest_size_and_node_in_its_metadata(env):
    import boto3

    sql(env, "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('from s3');")
    taken = env.cli("backup", str(env.spec_file))
    assert taken.returncode == 0, taken.stdout + taken.stderr

    listed = json.loads(env.cli("backups", str(env.spec_file), "--json").stdout)["backups"]
    [dump] = [r for r in listed if r["kind"] == "dump"]
    s3 = boto3.client("s3", endpoint_url=env.moto.url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                      aws_secret_access_key=SECRET)
    head = s3.head_object(Bucket="backups", Key=dump["id"])
    assert head["Metadata"]["sha256"] == dump["manifest_digest"] and head["Metadata"]["node"] == "db01"
    assert int(head["Metadata"]["size"]) == dump["size_bytes"] < head["ContentLength"]  # sealed: framing on top
    body = s3.get_object(Bucket="backups", Key=dump["id"])["Body"].read()
    assert body.startswith(b"DRBSEAL1") and b"from s3" not in body  # encrypted at rest


def test_down_then_up_fetches_it_with_a_presigned_url_and_the_data_is_back(env):
    assert env.cli("down", str(env.spec_file), "--yes").returncode == 0
    again = env.cli("up", str(env.spec_file))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]

    assert sql(env, "SELECT v FROM t;") == "from s3"
    assert "ago restored, sha256" in restore_detail(env) and "matched" in restore_detail(env)
    [restored] = [b for b in env.report()["backups"] if b["kind"] == "dump"]
    assert restored["verified"] == "ok" and restored["rpo_seconds"] is not None


def _content(path: Path) -> bytes:
    """A regular file's bytes; nothing for the rest (namespace files, sockets, links)."""
    if path.is_symlink() or not path.is_file():
        return b""
    try:
        return path.read_bytes()
    except OSError:  # a namespace handle bind-mounted on a file
        return b""


def test_no_bucket_credential_reaches_a_node_or_a_trace(env):
    bucket_secrets = [KnownSecret("the bucket's secret key", SECRET), KnownSecret("the bucket's key id", KEY_ID),
                      KnownSecret("the dumps' sealing key", SEALING_KEY)]
    findings = scan_for_secrets(bucket_secrets + environment_secrets(env.home / "state", env.name),
                                env.home / "state")
    assert findings == [], "\n".join(findings)
    # Nowhere under the environment's home: user-data, agent configs, node files, logs, spool.
    holding = [str(path) for path in Path(env.home).rglob("*")
               if any(secret.found_in(_content(path)) for secret in bucket_secrets)]
    assert holding == []
    assert all(s.value not in os.environ.values() for s in bucket_secrets)
