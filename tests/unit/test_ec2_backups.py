"""The EC2 family's backups against a fake EC2 Query API: which requests are made (tags in the
create request on EC2, CreateTags right after on Eucalyptus), a lost answer found by its tags
rather than snapshotted twice, records read from tags only, and refusals that make no request."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
from libcloud.compute.base import StorageVolume, VolumeSnapshot

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
from drbootstrap.providers.ec2 import EC2Provider, EucalyptusProvider
from drbootstrap.providers.ec2_resources import DEVICE_TAG
from drbootstrap.providers.ec2_snapshots import backup_tags_for, record_from_snapshot
from drbootstrap.providers.settings import ProviderSettings
from drbootstrap.providers.values import EnvironmentScope, VolumeWanted

ENV = "prod"
SCOPE = EnvironmentScope(ENV, Path("/nonexistent"), Path("/nonexistent/key.pem"))
BACKUP = {ENVIRONMENT_TAG: ENV, HOSTNAME_TAG: "db01", VOLUME_TAG: "data", CREATED_TAG: "1800000000",
          GOOD_TAG: "true"}


class FakeEC2:
    """Just enough of an EC2 driver: volumes, snapshots and the raw requests, recorded."""

    region_name = "us-east-1"
    path = "/"
    name = "Fake EC2"

    def __init__(self, *, lose_first_create: bool = False) -> None:
        self.requests: list[dict[str, str]] = []
        self.snapshots: dict[str, dict[str, str]] = {}
        self.lose_first_create = lose_first_create
        self.volume = StorageVolume("vol-1", "db01-sdf", 8, self, extra={"tags": {
            ENVIRONMENT_TAG: ENV, HOSTNAME_TAG: "db01", DEVICE_TAG: "/dev/sdf", VOLUME_TAG: "data"}})
        self.connection = SimpleNamespace(request=self._request)

    def list_volumes(self, ex_filters=None):
        return [self.volume]

    def _to_snapshots(self, body):
        return body

    def _request(self, path, params):
        self.requests.append(dict(params))
        action = params["Action"]
        if action == "CreateSnapshot":
            snapshot_id = f"snap-{len(self.snapshots) + 1}"
            self.snapshots[snapshot_id] = tags_in(params, "TagSpecification.1.Tag")
            if self.lose_first_create:
                self.lose_first_create = False
                raise ConnectionResetError("connection reset by peer")
            return SimpleNamespace(object=ET.fromstring(f"<r><snapshotId>{snapshot_id}</snapshotId></r>"))
        if action == "CreateTags":
            self.snapshots[params["ResourceId.1"]].update(tags_in(params, "Tag"))
            return SimpleNamespace(object=None)
        if action == "DescribeSnapshots":
            wanted = {params[k].removeprefix("tag:"): params[k.replace("Name", "Value.1")]
                      for k in params if k.startswith("Filter.") and k.endswith(".Name")}
            ids = {v for k, v in params.items() if k.startswith("SnapshotId.")}
            found = [VolumeSnapshot(i, size=8, driver=self, extra={"tags": dict(t), "state": "completed"})
                     for i, t in self.snapshots.items()
                     if (not ids or i in ids) and all(t.get(k) == v for k, v in wanted.items())]
            return SimpleNamespace(object=found)
        if action == "DeleteSnapshot":
            del self.snapshots[params["SnapshotId"]]
            return SimpleNamespace(object=None)
        raise AssertionError(f"unexpected {action}")

    def actions(self) -> list[str]:
        return [r["Action"] for r in self.requests]


def tags_in(params: dict[str, str], prefix: str) -> dict[str, str]:
    keys = {k.rsplit(".", 1)[0] for k in params if k.startswith(prefix + ".") and k.endswith(".Key")}
    return {params[f"{k}.Key"]: params[f"{k}.Value"] for k in keys}


def provider(driver: FakeEC2, family: type[EC2Provider] = EC2Provider) -> EC2Provider:
    settings = ProviderSettings(name="ec2", region="us-east-1", extra={"retry_base_delay": 0.001,
                                                                       "retry_max_delay": 0.002})
    return family(settings, SCOPE, driver_factory=lambda: driver)


def test_ec2_tags_the_snapshot_in_the_create_request_itself():
    driver = FakeEC2()

    snapshot_id = provider(driver).snapshot_volume("db01", "data", {CREATED_TAG: "1800000000", GOOD_TAG: "true",
                                                                    MANIFEST_TAG: "ab" * 32})

    [create] = [r for r in driver.requests if r["Action"] == "CreateSnapshot"]
    assert create["VolumeId"] == "vol-1" and create["TagSpecification.1.ResourceType"] == "snapshot"
    assert "CreateTags" not in driver.actions()
    assert driver.snapshots[snapshot_id] == {**BACKUP, MANIFEST_TAG: "ab" * 32, "Name": "drb-prod-db01-data"}


def test_eucalyptus_creates_then_tags_at_once_numbered_from_one():
    driver = FakeEC2()

    snapshot_id = provider(driver, EucalyptusProvider).snapshot_volume("db01", "data", {CREATED_TAG: "1800000000",
                                                                                        GOOD_TAG: "true"})

    assert driver.actions() == ["CreateSnapshot", "CreateTags"]
    assert not any(k.startswith("TagSpecification") for k in driver.requests[0])
    assert driver.requests[1]["ResourceId.1"] == snapshot_id and "Tag.1.Key" in driver.requests[1]
    assert driver.snapshots[snapshot_id] == {**BACKUP, "Name": "drb-prod-db01-data"}


def test_a_create_whose_answer_was_lost_is_found_by_its_tags_not_made_twice():
    driver = FakeEC2(lose_first_create=True)

    snapshot_id = provider(driver).snapshot_volume("db01", "data", {CREATED_TAG: "1800000000", GOOD_TAG: "true"})

    assert driver.actions() == ["CreateSnapshot", "DescribeSnapshots"]
    assert list(driver.snapshots) == [snapshot_id]


def test_a_snapshot_is_taken_of_the_environments_own_volume_only():
    driver = FakeEC2()

    with pytest.raises(NotFoundError, match="db01 has no volume 'logs' in environment prod"):
        provider(driver).snapshot_volume("db01", "logs", {})
    with pytest.raises(ProviderError, match="contradicts"):
        provider(driver).snapshot_volume("db01", "data", {HOSTNAME_TAG: "web01"})
    assert "CreateSnapshot" not in driver.actions()


@pytest.mark.parametrize(("tags", "reason"), [
    ({}, "no drbootstrap:environment tag"),
    ({**BACKUP, ENVIRONMENT_TAG: "other"}, "tagged as environment other's"),
    ({ENVIRONMENT_TAG: ENV}, "backup tags are incomplete"),
])
def test_deleting_anything_but_the_environments_backup_is_refused_without_a_delete(tags, reason):
    driver = FakeEC2()
    driver.snapshots["snap-9"] = tags

    with pytest.raises(ProviderError, match=f"refused to delete snapshot snap-9: .*{reason}"):
        provider(driver).delete_backup("snap-9")

    assert "DeleteSnapshot" not in driver.actions() and "snap-9" in driver.snapshots


def test_the_environments_backup_is_deleted_and_an_unknown_one_is_not_found():
    driver = FakeEC2()
    driver.snapshots["snap-9"] = dict(BACKUP)

    provider(driver).delete_backup("snap-9")
    with pytest.raises(NotFoundError, match="backup snap-9 not found at ec2:us-east-1"):
        provider(driver).delete_backup("snap-9")

    assert driver.snapshots == {}


def test_a_verification_is_recorded_on_another_environments_backup_but_never_its_identity():
    driver = FakeEC2()
    driver.snapshots["snap-9"] = {**BACKUP, ENVIRONMENT_TAG: "production"}  # a drill restored it

    provider(driver).tag_backup("snap-9", {VERIFIED_TAG: "failed:1800000100"})
    with pytest.raises(ProviderError, match="refused to change its drbootstrap:volume tag"):
        provider(driver).tag_backup("snap-9", {VOLUME_TAG: "logs"})

    assert driver.snapshots["snap-9"][VERIFIED_TAG] == "failed:1800000100"
    assert driver.snapshots["snap-9"][VOLUME_TAG] == "data"


def test_records_come_from_tags_only_and_a_failed_snapshot_is_not_good():
    def snapshot(tags, state="completed"):
        return VolumeSnapshot("snap-1", size=2, driver=None, extra={"tags": tags, "state": state})

    record = record_from_snapshot(snapshot({**BACKUP, VERIFIED_TAG: "ok:1800000200"}), "ec2:us-east-1")
    assert record is not None
    assert (record.hostname, record.name, record.created_at, record.size_bytes, record.verified_ok,
            record.verified_at, record.good) == ("db01", "data", 1800000000.0, 2 * 2 ** 30, True, 1800000200.0, True)
    broken = record_from_snapshot(snapshot(BACKUP, state="error"), "ec2:us-east-1")
    assert broken is not None and not broken.good
    assert record_from_snapshot(snapshot({**BACKUP, CREATED_TAG: "yesterday"}), "") is None
    assert record_from_snapshot(snapshot({ENVIRONMENT_TAG: ENV}), "") is None


def test_backup_tags_fill_the_identity_and_the_time():
    tags = backup_tags_for(ENV, "db01", "data", {GOOD_TAG: "true"}, now=1800000000.7)

    assert tags == {**BACKUP, "Name": "drb-prod-db01-data"}


def test_eucalyptus_has_no_region_to_copy_to():
    driver = FakeEC2()
    driver.snapshots["snap-9"] = dict(BACKUP)

    with pytest.raises(ProviderError, match="no other region"):
        provider(driver, EucalyptusProvider).copy_backup("snap-9", "us-west-2")


def test_a_volume_made_before_volumes_carried_their_name_is_found_by_its_device_not_made_again():
    driver = FakeEC2()
    del driver.volume.extra["tags"][VOLUME_TAG]
    node = SimpleNamespace(id="i-1", extra={"availability": "us-east-1a"})

    done = provider(driver).attach_volumes(node, "db01", [VolumeWanted("data", "/srv/db", 8)], lambda p: p)

    assert done == ["data attached at /dev/sdf at launch (mount /srv/db)"]
    assert driver.requests == []  # listing volumes is list_volumes; nothing was created
    assert provider(driver).snapshot_volume("db01", "/dev/sdf", {GOOD_TAG: "true"}) in driver.snapshots


def test_a_provider_at_another_site_deletes_the_environments_backups_it_owns():
    driver = FakeEC2()
    driver.snapshots["snap-9"] = dict(BACKUP)
    at_site_b = EnvironmentScope(f"{ENV}.b", Path("/nonexistent"), Path("/nonexistent/key.pem"), backups_of=ENV)

    EC2Provider(ProviderSettings(name="ec2", region="us-east-1"), at_site_b,
                driver_factory=lambda: driver).delete_backup("snap-9")

    assert driver.snapshots == {}
