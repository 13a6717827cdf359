"""The backup commands that need no agent, through the real CLI against a real moto server: `backups
--json` lists the environment's snapshots with their tags and age, `backup --prune-only` deletes
exactly what keep_last/max_age_days allow (at the primary and at a `copy_backups` site), and a
snapshot of another environment is never listed or deleted. Then the copy `backup` makes to a
`copy_backups: true` site in another region: listed there by `backups --site` with the same tags,
and named by what `failover --dry-run` says it would restore there.

On moto no agent runs, so `backup` itself cannot take a snapshot (its hooks and manifest run on the
node): the snapshots are made through the provider, as `backup` makes them, and the copy through
copy_to_sites, the function `backup` calls once its snapshots are taken."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from drbootstrap.backups.catalog import CREATED_TAG, ENVIRONMENT_TAG, GOOD_TAG, MANIFEST_TAG
from drbootstrap.backups.take import BackupRun, VolumeBackup, copy_sites, copy_to_sites
from drbootstrap.executor.build import provider_for
from drbootstrap.failover.dry_run import _restores_at
from drbootstrap.failover.sites import site_named
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import build_plan
from drbootstrap.spec import load_spec
from tests.integration.ec2.test_ec2_backups import (
    OTHER_REGION,
    environment_volumes,
    foreign_snapshots,
    region_view,
    snapshot_ids,
    snapshot_tags,
    tagged_ids,
)
from tests.support.prereq import run_cli

pytestmark = pytest.mark.integration

ENV = "motobackup"
DAY = 86_400
SPEC = """\
environment: motobackup
domain: motobackup.internal
provider: &ec2
  name: ec2
  region: us-east-1
  zone: us-east-1a
  endpoint: @ENDPOINT@
  credentials:
    access_key_id: ${env:DRB_TEST_EC2_KEY}
    secret_access_key: ${env:DRB_TEST_EC2_SECRET}
  images: {master: ami-12c6146b, worker: ami-12c6146b}
  sizes: {small: t2.micro}
  extra:
    driver_class: "tests.support.moto_ec2:MotoEC2NodeDriver"
    operator_cidr: 192.0.2.10/32
    retry_max_attempts: 12
    retry_base_delay: 0.05
    retry_max_delay: 0.5
sites:
  - name: west
    copy_backups: true
    provider:
      name: ec2
      region: us-west-2
      zone: us-west-2a
      endpoint: @ENDPOINT@
      credentials:
        access_key_id: ${env:DRB_TEST_EC2_KEY}
        secret_access_key: ${env:DRB_TEST_EC2_SECRET}
      images: {master: ami-12c6146b, worker: ami-12c6146b}
      sizes: {small: t2.micro}
      extra:
        driver_class: "tests.support.moto_ec2:MotoEC2NodeDriver"
        operator_cidr: 192.0.2.10/32
master:
  hostname: controller
nodes:
  - role: db
    hostnames: [db01]
    volumes:
      - name: data
        mount: /srv/db
        size_gb: 1
        backup: {keep_last: 2, max_age_days: 30}
      - name: logs
        mount: /srv/logs
        size_gb: 1
        backup: {keep_last: 1}
"""


def write_spec(tmp_path: Path, endpoint: str) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(SPEC.replace("@ENDPOINT@", endpoint))
    return path


def cli_json(*args: str) -> dict:
    result = run_cli(*args, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_backups_lists_and_prune_only_deletes_what_retention_allows_here_and_at_the_copy_site(
        fresh_moto, ec2_view, tmp_path, credentials):
    spec_file, state = write_spec(tmp_path, fresh_moto.url), tmp_path / "state"
    spec = load_spec(spec_file)
    environment_volumes(ec2_view, ENV, ["db01"], ["data", "logs"])
    others = foreign_snapshots(ec2_view)  # production2's db01/data (1700000000, older than 30 days) and more
    provider = provider_for(spec, EnvironmentPaths(state, ENV))
    now = int(time.time())

    def take(volume: str, age_days: float, good: bool = True) -> str:
        return provider.snapshot_volume("db01", volume, {CREATED_TAG: str(int(now - age_days * DAY)),
                                                        MANIFEST_TAG: "a" * 64, GOOD_TAG: str(good).lower()})

    data = {"ancient": take("data", 60), "old": take("data", 40), "bad": take("data", 2.5, good=False),
            "recent": take("data", 2), "newest": take("data", 1)}
    logs = {"older": take("logs", 3), "newer": take("logs", 0.5)}

    state_args = ("--state-dir", str(state))
    catalog = cli_json("backups", str(spec_file), *state_args)
    assert catalog["environment"] == ENV and catalog["schema_version"] == 1
    listed = {b["id"]: b for b in catalog["backups"]}
    assert set(listed) == set(data.values()) | set(logs.values())  # nothing of production2's, nor untagged
    newest = listed[data["newest"]]
    assert (newest["hostname"], newest["name"], newest["kind"], newest["good"], newest["manifest_digest"],
            newest["location"]) == ("db01", "data", "snapshot", True, "a" * 64, "ec2:us-east-1")
    assert DAY - 60 < newest["age_seconds"] < DAY + 60 and listed[data["bad"]]["good"] is False
    assert [b["id"] for b in catalog["backups"]] == [data[k] for k in ("newest", "recent", "bad", "old", "ancient")] \
        + [logs["newer"], logs["older"]]  # per volume, newest first

    table = run_cli("backups", str(spec_file), *state_args)
    assert table.exit_code == 0 and data["newest"] in table.stdout and "never restored" in table.stdout

    # The copy `backup` makes of each new good snapshot to the `copy_backups` site, in its region.
    run = BackupRun(ENV, volumes=[VolumeBackup("db01", "data", data["newest"], good=True),
                                  VolumeBackup("db01", "logs", logs["newer"], good=True),
                                  VolumeBackup("db01", "scratch", None, problems=["pre_snapshot failed: x"])])
    sites = copy_sites(spec, EnvironmentPaths(state, ENV))
    assert [s.name for s in sites] == ["west"]
    copy_to_sites(spec, provider, run, sites)
    assert not run.site_failures and [(c.where, c.snapshot_id, c.site) for c in run.copies] == [
        ("db01/data", data["newest"], "west"), ("db01/logs", logs["newer"], "west")]
    assert not any(c.shared for c in run.copies)
    west = region_view(fresh_moto.url, OTHER_REGION)
    for copy in run.copies:
        assert snapshot_tags(west, copy.copy_id) == snapshot_tags(ec2_view, copy.snapshot_id)
    at_west = cli_json("backups", str(spec_file), "--site", "west", *state_args)
    assert {(b["id"], b["hostname"], b["name"], b["created_at"], b["location"]) for b in at_west["backups"]} == {
        (c.copy_id, "db01", c.where.split("/")[1], listed[c.snapshot_id]["created_at"], "ec2:us-west-2")
        for c in run.copies}
    copy_to_sites(spec, provider, run, sites)  # again: the copies already there are found, none made twice
    assert len(tagged_ids(west, ENV)) == 2

    # What `failover --dry-run --to west` says it would restore: the copies there.
    copy_of = {c.where: c.copy_id for c in run.copies}
    lines = _restores_at(spec, state, site_named(spec, "west"), build_plan(spec))
    assert [line.split(" (taken")[0] for line in lines] == [
        f"site west: db01/data would be restored from {copy_of['db01/data']}",
        f"site west: db01/logs would be restored from {copy_of['db01/logs']}"]
    assert lines[0].endswith(" 24 h old)") or lines[0].endswith(" 23 h old)"), lines[0]

    # An older copy at west, beyond keep_last: --prune-only deletes it there too.
    stale_copy = provider.copy_backup(data["recent"], OTHER_REGION)
    ancient_copy = provider.copy_backup(data["ancient"], OTHER_REGION)

    pruned = run_cli("backup", str(spec_file), "--prune-only", *state_args)
    assert pruned.exit_code == 0, pruned.stdout + pruned.stderr
    # data: keep_last 2 AND older than 30 days -> ancient and old go; bad goes (a newer good one exists);
    # logs: keep_last 1 only -> older goes. At west: the ancient copy (the two newest stay).
    gone = {data["ancient"], data["old"], data["bad"], logs["older"], ancient_copy}
    for snapshot_id in gone:
        assert f"pruned {snapshot_id} " in pruned.stdout, pruned.stdout
    assert pruned.stdout.count("pruned ") == len(gone)
    assert tagged_ids(ec2_view, ENV) == {data["recent"], data["newest"], logs["newer"]}
    assert tagged_ids(west, ENV) == set(copy_of.values()) | {stale_copy}
    assert set(others.values()) <= snapshot_ids(ec2_view)  # production2's old backup of db01/data stays
    assert snapshot_tags(ec2_view, others["other"])[ENVIRONMENT_TAG] == "production2"

    again = run_cli("backup", str(spec_file), "--prune-only", *state_args)
    assert again.exit_code == 0 and "nothing to prune" in again.stdout
    assert {b["id"] for b in cli_json("backups", str(spec_file), *state_args)["backups"]} == \
        tagged_ids(ec2_view, ENV)
