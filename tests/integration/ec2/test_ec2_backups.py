"""Backups on the EC2 family through libcloud's EC2 driver against a real moto server: the
environment's volumes snapshotted and tagged, listed from the tags, restored by `up --until
launch`, tagged with a verification, pruned one by one, copied to another region with their tags;
a snapshot of another environment, or an untagged one, in the same account is never listed,
tagged, deleted or copied."""

from __future__ import annotations

import pytest

from drbootstrap.backups.catalog import (
    CREATED_TAG,
    ENVIRONMENT_TAG,
    GOOD_TAG,
    HOSTNAME_TAG,
    MANIFEST_TAG,
    VERIFIED_TAG,
    VOLUME_TAG,
)
from drbootstrap.errors import NotFoundError, ProviderError
from drbootstrap.executor import UpOptions, down, up
from drbootstrap.executor.build import provider_for
from drbootstrap.journal import Step
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.providers.values import VolumeWanted
from drbootstrap.spec import load_spec
from tests.integration.ec2.conftest import ACCESS_KEY, SECRET_KEY, ec2_provider
from tests.integration.ec2.test_up_ec2 import ENV, a_snapshot, tags_of, write_spec
from tests.support.faulty_proxy import LOST_ANSWER, THROTTLE, FaultPlan, running_faulty_proxy

pytestmark = pytest.mark.integration

DIGEST_1 = "1" * 64
DIGEST_2 = "2" * 64
OTHER_REGION = "us-west-2"


def snapshot_tags(view, snapshot_id: str) -> dict[str, str]:
    [snapshot] = view.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    return tags_of(snapshot)


def snapshot_ids(view) -> set[str]:
    return {s["SnapshotId"] for s in view.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def foreign_snapshots(view) -> dict[str, str]:
    """Snapshots in the same account that are not this environment's: another environment's backup
    of a node and volume of the same names, an untagged one, and one with our environment's tag but
    nothing else (not a backup)."""
    made = {}
    for label, tags in (("other", {ENVIRONMENT_TAG: "production2", HOSTNAME_TAG: "db01", VOLUME_TAG: "data",
                                   CREATED_TAG: "1700000000", GOOD_TAG: "true"}),
                        ("untagged", {}),
                        ("partial", {ENVIRONMENT_TAG: ENV})):
        volume = view.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
        extra = {"TagSpecifications": [{"ResourceType": "snapshot",
                                        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]} if tags else {}
        made[label] = view.create_snapshot(VolumeId=volume, **extra)["SnapshotId"]
    return made


def region_view(endpoint: str, region: str):
    import boto3

    return boto3.client("ec2", region_name=region, endpoint_url=endpoint,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def tagged_ids(view, environment: str) -> set[str]:
    found = view.describe_snapshots(Filters=[{"Name": f"tag:{ENVIRONMENT_TAG}", "Values": [environment]}])
    return {s["SnapshotId"] for s in found["Snapshots"]}


def environment_volumes(view, environment: str, hostnames: list[str], names: list[str]) -> None:
    """Volumes tagged as `up` tags them, without the instances (the snapshots do not need them)."""
    for hostname in hostnames:
        for name in names:
            tags = {ENVIRONMENT_TAG: environment, HOSTNAME_TAG: hostname, VOLUME_TAG: name}
            view.create_volume(Size=1, AvailabilityZone="us-east-1a", TagSpecifications=[
                {"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])


def test_backups_are_tagged_listed_restored_by_up_until_launch_pruned_and_copied_never_touching_others(
        fresh_moto, ec2_view, tmp_path, credentials):
    spec = load_spec(write_spec(tmp_path, fresh_moto.url, a_snapshot(ec2_view), web_count=1))
    state = tmp_path / "state"
    result, _ = up(spec, state, options=UpOptions(until=Step.LAUNCH))
    assert not result.failed
    provider = provider_for(spec, EnvironmentPaths(state, ENV))
    others = foreign_snapshots(ec2_view)
    volumes = {tags_of(v)[VOLUME_TAG]: v for v in ec2_view.describe_volumes()["Volumes"]
               if tags_of(v).get(ENVIRONMENT_TAG) == ENV}
    assert sorted(volumes) == ["data", "scratch"]  # `up` names each volume as the spec does

    first = provider.snapshot_volume("db01", "data", {CREATED_TAG: "1800000000", MANIFEST_TAG: DIGEST_1,
                                                      GOOD_TAG: "true"})
    scratch = provider.snapshot_volume("db01", "scratch", {CREATED_TAG: "1800000001", GOOD_TAG: "false"})
    second = provider.snapshot_volume("db01", "/dev/sdf", {VOLUME_TAG: "/dev/sdf", CREATED_TAG: "1800000100",
                                                           MANIFEST_TAG: DIGEST_2, GOOD_TAG: "true"})

    [taken] = ec2_view.describe_snapshots(SnapshotIds=[first])["Snapshots"]
    assert taken["VolumeId"] == volumes["data"]["VolumeId"]
    assert tags_of(taken) == {ENVIRONMENT_TAG: ENV, HOSTNAME_TAG: "db01", VOLUME_TAG: "data",
                              CREATED_TAG: "1800000000", MANIFEST_TAG: DIGEST_1, GOOD_TAG: "true",
                              "Name": f"drb-{ENV}-db01-data"}
    assert ec2_view.describe_snapshots(SnapshotIds=[second])["Snapshots"][0]["VolumeId"] == volumes["data"]["VolumeId"]
    with pytest.raises(NotFoundError, match="no volume 'logs'"):
        provider.snapshot_volume("db01", "logs", {})
    with pytest.raises(ProviderError, match="contradicts"):
        provider.snapshot_volume("db01", "data", {ENVIRONMENT_TAG: "production2"})

    listed = provider.list_backups(ENV)
    assert [(r.id, r.hostname, r.name, r.created_at, r.manifest_digest, r.good) for r in listed] == [
        (first, "db01", "data", 1800000000.0, DIGEST_1, True),
        (scratch, "db01", "scratch", 1800000001.0, None, False),
        (second, "db01", "/dev/sdf", 1800000100.0, DIGEST_2, True)]
    assert all(r.kind == "snapshot" and r.environment == ENV and r.location == "ec2:us-east-1"
               and r.size_bytes == (8 if r.name != "scratch" else 2) * 2 ** 30 and r.verified_at is None
               for r in listed)
    assert [r.id for r in provider.list_backups("production2")] == [others["other"]]

    provider.tag_backup(first, {VERIFIED_TAG: "ok:1800000500"})
    [verified] = [r for r in provider.list_backups(ENV) if r.id == first]
    assert (verified.verified_ok, verified.verified_at) == (True, 1800000500.0)
    with pytest.raises(ProviderError, match="refused to change"):
        provider.tag_backup(first, {HOSTNAME_TAG: "web01"})
    for label in ("untagged", "partial"):
        with pytest.raises(ProviderError, match="refused to tag"):
            provider.tag_backup(others[label], {VERIFIED_TAG: "ok:1"})

    # Restore: the spec names the chosen backup, `up --until launch` makes db01's volume from it.
    down(spec, state)
    assert {first, second, scratch} <= snapshot_ids(ec2_view)  # backups outlive the environment
    restored_spec = load_spec(write_spec(tmp_path, fresh_moto.url, first, web_count=1))
    again, _ = up(restored_spec, state, options=UpOptions(until=Step.LAUNCH))
    assert not again.failed
    restored = {tags_of(v)[VOLUME_TAG]: v for v in ec2_view.describe_volumes()["Volumes"]
                if tags_of(v).get(ENVIRONMENT_TAG) == ENV}
    assert restored["data"]["SnapshotId"] == first and restored["data"]["Size"] == 8
    assert restored["data"]["Attachments"][0]["Device"] == "/dev/sdf"
    assert not restored["scratch"].get("SnapshotId")

    # A restore that fails verification makes way for an older backup: the volume discarded, then
    # made again from the other backup at the device it left free; the other volume untouched.
    db01 = provider.find("db01")
    assert provider.discard_volume(db01, "db01", "data") and not provider.discard_volume(db01, "db01", "data")
    [line] = provider.attach_volumes(db01, "db01", [VolumeWanted("data", "/srv/db", 8, second)], lambda p: p)
    assert line.endswith(f"at /dev/sdf from {second} (mount /srv/db)")
    remade = {tags_of(v)[VOLUME_TAG]: v for v in ec2_view.describe_volumes()["Volumes"]
              if tags_of(v).get(ENVIRONMENT_TAG) == ENV}
    assert remade["data"]["SnapshotId"] == second and remade["data"]["VolumeId"] != restored["data"]["VolumeId"]
    assert remade["data"]["Attachments"][0]["Device"] == "/dev/sdf"
    assert remade["data"]["Attachments"][0]["InstanceId"] == db01.id
    assert remade["scratch"]["VolumeId"] == restored["scratch"]["VolumeId"]
    assert provider.attach_volumes(db01, "db01", [VolumeWanted("data", "/srv/db", 8, first),
                                                  VolumeWanted("scratch", "/srv/scratch", 2)], lambda p: p) == [
        "data attached at /dev/sdf at launch (mount /srv/db)",
        "scratch attached at /dev/sdg at launch (mount /srv/scratch)"]
    assert len([v for v in ec2_view.describe_volumes()["Volumes"] if tags_of(v).get(ENVIRONMENT_TAG) == ENV]) == 2

    # Pruning deletes exactly what is asked, and refuses what is not the environment's.
    provider.delete_backup(scratch)
    assert scratch not in snapshot_ids(ec2_view)
    assert [r.id for r in provider.list_backups(ENV)] == [first, second]
    for label in ("other", "untagged", "partial"):
        with pytest.raises(ProviderError, match=f"refused to delete snapshot {others[label]}"):
            provider.delete_backup(others[label])
    with pytest.raises(NotFoundError, match="snap-00000000000000000 not found"):
        provider.delete_backup("snap-00000000000000000")
    assert set(others.values()) <= snapshot_ids(ec2_view)
    assert snapshot_tags(ec2_view, others["other"])[ENVIRONMENT_TAG] == "production2"
    assert snapshot_tags(ec2_view, others["untagged"]) == {}

    # Copied to another region with every tag; copying again finds the copy.
    copy = provider.copy_backup(first, OTHER_REGION)
    west = region_view(fresh_moto.url, OTHER_REGION)
    assert snapshot_tags(west, copy) == snapshot_tags(ec2_view, first)
    assert provider.copy_backup(first, OTHER_REGION) == copy
    assert [s["SnapshotId"] for s in west.describe_snapshots(
        Filters=[{"Name": f"tag:{ENVIRONMENT_TAG}", "Values": [ENV]}])["Snapshots"]] == [copy]
    with pytest.raises(ProviderError, match="refused to copy"):
        provider.copy_backup(others["other"], OTHER_REGION)
    down(restored_spec, state)
    assert set(others.values()) | {first, second} <= snapshot_ids(ec2_view)


def test_lost_answers_and_throttling_cost_retries_never_a_second_snapshot_copy_or_a_wrong_delete(
        fresh_moto, ec2_view, tmp_path):
    hostnames, names = ["db01", "db02", "db03", "db04"], ["data", "logs"]
    environment_volumes(ec2_view, "faulty", hostnames, names)
    plan = FaultPlan(rate=0.5, seed=11, kinds=(LOST_ANSWER, THROTTLE),
                     actions=frozenset({"CreateSnapshot", "CopySnapshot", "DeleteSnapshot"}))
    with running_faulty_proxy(fresh_moto.url, plan) as proxy:
        provider = ec2_provider(proxy.url, tmp_path, "faulty", retry_max_attempts=12)
        retries = []
        provider.pacing.on_retry = retries.append
        taken = {(h, n): provider.snapshot_volume(h, n, {CREATED_TAG: "1800000000", GOOD_TAG: "true"})
                 for h in hostnames for n in names}
        copies = {provider.copy_backup(snapshot_id, OTHER_REGION) for snapshot_id in taken.values()}
        pruned = [taken[(h, "logs")] for h in hostnames]
        for snapshot_id in pruned:
            provider.delete_backup(snapshot_id)
        lost = {action: proxy.count(action, fault=LOST_ANSWER)
                for action in ("CreateSnapshot", "CopySnapshot", "DeleteSnapshot")}

    assert all(count >= 1 for count in lost.values()), lost  # each kind of request lost its answer at least once
    assert len(retries) == proxy.count(fault=LOST_ANSWER) + proxy.count(fault=THROTTLE)
    assert tagged_ids(ec2_view, "faulty") == set(taken.values()) - set(pruned)
    west = region_view(fresh_moto.url, OTHER_REGION)
    assert tagged_ids(west, "faulty") == copies and len(copies) == len(taken)
    assert {(tags["drbootstrap:hostname"], tags["drbootstrap:volume"]) for tags in
            (snapshot_tags(west, c) for c in copies)} == set(taken)


def test_a_dialect_without_tags_in_create_requests_tags_right_after(fresh_moto, ec2_view, tmp_path):
    environment_volumes(ec2_view, "untagging", ["db01"], ["data"])
    provider = ec2_provider(fresh_moto.url, tmp_path, "untagging")
    provider.snapshot_tags_at_creation = False  # as Eucalyptus's provider

    taken = provider.snapshot_volume("db01", "data", {CREATED_TAG: "1800000000", GOOD_TAG: "true"})
    copy = provider.copy_backup(taken, OTHER_REGION)

    assert snapshot_tags(ec2_view, taken) == {ENVIRONMENT_TAG: "untagging", HOSTNAME_TAG: "db01",
                                              VOLUME_TAG: "data", CREATED_TAG: "1800000000", GOOD_TAG: "true",
                                              "Name": "drb-untagging-db01-data"}
    assert snapshot_tags(region_view(fresh_moto.url, OTHER_REGION), copy) == snapshot_tags(ec2_view, taken)
    assert [r.id for r in provider.list_backups("untagging")] == [taken]
