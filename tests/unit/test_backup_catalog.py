"""The backup catalog lives in snapshot tags: a record survives the round trip, foreign snapshots are not ours."""

from __future__ import annotations

import pytest

from drbootstrap.backups.catalog import (
    CREATED_TAG,
    ENVIRONMENT_TAG,
    GOOD_TAG,
    VERIFIED_TAG,
    BackupRecord,
    backup_tags,
    record_from_tags,
    verified_tags,
)


def _record(**changes: object) -> BackupRecord:
    values: dict = dict(id="snap-1", kind="snapshot", environment="prod", hostname="db01", name="data",
                        created_at=1700000000.0, size_bytes=1024, manifest_digest="ab" * 32, location="local")
    values.update(changes)
    return BackupRecord(**values)


def test_a_record_survives_its_tags() -> None:
    record = _record(verified_at=1700000100.0, verified_ok=True)
    assert record_from_tags("snap-1", backup_tags(record), size_bytes=1024, location="local") == record


def test_tags_use_the_contract_names() -> None:
    tags = backup_tags(_record(good=False))
    assert tags == {"drbootstrap:environment": "prod", "drbootstrap:hostname": "db01", "drbootstrap:volume": "data",
                    "drbootstrap:backup-created": "1700000000", "drbootstrap:manifest": "ab" * 32,
                    "drbootstrap:good": "false"}
    assert verified_tags(False, 1700000200.5) == {"drbootstrap:verified": "failed:1700000200"}


@pytest.mark.parametrize("broken", [ENVIRONMENT_TAG, CREATED_TAG])
def test_a_snapshot_missing_a_tag_is_not_a_backup(broken: str) -> None:
    tags = backup_tags(_record())
    del tags[broken]
    assert record_from_tags("snap-1", tags) is None
    assert record_from_tags("snap-1", {**backup_tags(_record()), CREATED_TAG: "yesterday"}) is None


def test_unreadable_verification_and_absent_good_tag_count_as_unverified_and_not_good() -> None:
    tags = {**backup_tags(_record()), VERIFIED_TAG: "maybe:1"}
    del tags[GOOD_TAG]
    record = record_from_tags("snap-1", tags)
    assert record is not None and record.verified_ok is None and record.good is False


def test_the_default_provider_refuses_backups_naming_its_driver() -> None:
    from pathlib import Path

    from drbootstrap.errors import ProviderError
    from drbootstrap.providers.base import Provider
    from drbootstrap.providers.settings import ProviderSettings
    from drbootstrap.providers.values import EnvironmentScope

    class NoSnapshots(Provider):
        def new_driver(self):  # type: ignore[no-untyped-def]
            class Driver:
                name = "Plain"
            return Driver()

    provider = NoSnapshots(ProviderSettings(name="plain"), EnvironmentScope("env1", Path("/x"), Path("/x/k")))
    calls = [lambda: provider.snapshot_volume("db01", "data", {}), lambda: provider.list_backups("env1"),
             lambda: provider.tag_backup("snap-1", {}), lambda: provider.delete_backup("snap-1")]
    for call in calls:
        with pytest.raises(ProviderError, match="the Plain driver cannot"):
            call()
