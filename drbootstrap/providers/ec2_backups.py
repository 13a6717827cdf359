"""The EC2 family's backups as a provider offers them (backups/catalog.py): tagged snapshots of the
volumes `up` made, listed, tagged, pruned and copied to another region (the requests themselves
are ec2_snapshots.py's). EC2Provider (ec2.py) is one of these."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from drbootstrap.backups.catalog import BackupRecord
from drbootstrap.errors import NotFoundError, ProviderError
from drbootstrap.providers import ec2_resources as resources
from drbootstrap.providers import ec2_snapshots as snapshots
from drbootstrap.providers.base import Provider
from drbootstrap.providers.settings import driver_class_override

if TYPE_CHECKING:
    from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver


class EC2Backups(Provider):
    """Snapshots tagged per backups/catalog.py."""

    # CreateSnapshot and CopySnapshot take TagSpecification (else: CreateTags right after).
    snapshot_tags_at_creation: ClassVar[bool] = True

    def driver(self) -> BaseEC2NodeDriver:
        """This thread's driver: every EC2 dialect's (EC2, Eucalyptus, a driver_class subclass) is one."""
        return cast("BaseEC2NodeDriver", super().driver())

    @property
    def backup_location(self) -> str:
        """Where this provider's snapshots live, as a BackupRecord's location."""
        return f"ec2:{self.driver().region_name}"

    def snapshot_volume(self, hostname: str, volume: str, tags: Mapping[str, str]) -> str:
        """Snapshot the volume `up` made for `hostname` as `volume` (found by its tags), tagged by
        the CreateSnapshot request itself; the snapshot id."""
        driver = self.driver()
        found = resources.node_volume(driver, self.environment, hostname, volume, pacing=self.pacing)
        if found is None:
            raise NotFoundError(f"{hostname} has no volume {volume!r} in environment {self.environment} "
                                f"at {self.backup_location}",
                                hint="run `drbootstrap up` for the environment first, or check the volume's name")
        wanted = snapshots.backup_tags_for(self.backups_environment, hostname, volume, tags)
        return snapshots.create_snapshot(driver, str(found.id), wanted, pacing=self.pacing,
                                         tags_at_creation=self.snapshot_tags_at_creation)

    def list_backups(self, environment: str) -> list[BackupRecord]:
        """Every snapshot of this account tagged as `environment`'s backup, oldest first."""
        found = snapshots.tagged_snapshots(self.driver(), {snapshots.ENVIRONMENT_TAG: environment},
                                           pacing=self.pacing, operation=f"list backups of {environment}")
        location = self.backup_location
        records = [r for r in (snapshots.record_from_snapshot(s, location) for s in found)
                   if r is not None and r.environment == environment]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    def tag_backup(self, snapshot_id: str, tags: Mapping[str, str]) -> None:
        """Add or replace tags on a backup (a snapshot tagged with an environment: a drill records
        its verification on the production backups it restored). What makes the snapshot the
        backup it is (environment, node, volume, time) is never changed."""
        snapshot = self._backup(snapshot_id, "tag", own_only=False)
        have = snapshots.snapshot_tags(snapshot)
        for key in snapshots.IDENTITY_TAGS:
            if key in tags and tags[key] != have.get(key):
                raise ProviderError(f"backup {snapshot_id}: refused to change its {key} tag",
                                    hint="a backup's environment, node, volume and time stay as taken")
        driver = self.driver()
        self.call(f"tag backup {snapshot_id}", lambda: resources.create_tags(driver, snapshot_id, dict(tags)))

    def delete_backup(self, snapshot_id: str) -> None:
        """Delete one of this environment's backups; any other snapshot is refused."""
        self._backup(snapshot_id, "delete", own_only=True)
        snapshots.delete_snapshot(self.driver(), snapshot_id, pacing=self.pacing)

    def copy_backup(self, snapshot_id: str, to_region: str) -> str:
        """Copy one of this environment's backups to `to_region` with its tags; the copy's id there
        (the copy an earlier call made, if there is one)."""
        snapshot = self._backup(snapshot_id, "copy", own_only=True)
        destination = self.driver_for_region(to_region)
        return snapshots.copy_snapshot(destination, snapshot_id, self.driver().region_name,
                                       snapshots.snapshot_tags(snapshot), pacing=self.pacing,
                                       tags_at_creation=self.snapshot_tags_at_creation)

    def driver_for_region(self, region: str) -> BaseEC2NodeDriver:
        """A driver like this provider's for another region (at the same endpoint, if the spec names one)."""
        from libcloud.compute.drivers.ec2 import EC2NodeDriver

        from drbootstrap.providers.ec2_driver import build_ec2_driver

        settings = dataclasses.replace(self.settings, region=region)
        family = driver_class_override(settings, EC2NodeDriver) or EC2NodeDriver
        return cast("BaseEC2NodeDriver", build_ec2_driver(settings, driver_class=family))

    def _backup(self, snapshot_id: str, action: str, *, own_only: bool) -> Any:
        """The snapshot, after checking it is a backup this provider may `action`."""
        snapshot = snapshots.find_snapshot(self.driver(), snapshot_id, pacing=self.pacing)
        if snapshot is None:
            raise NotFoundError(f"backup {snapshot_id} not found at {self.backup_location}",
                                hint="`drbootstrap backups` lists the environment's backups")
        owner = snapshots.snapshot_tags(snapshot).get(snapshots.ENVIRONMENT_TAG)
        if not owner:
            reason = f"no {snapshots.ENVIRONMENT_TAG} tag"
        elif own_only and owner != self.backups_environment:
            reason = f"tagged as environment {owner}'s"
        elif snapshots.record_from_snapshot(snapshot, self.backup_location) is None:
            reason = "its backup tags are incomplete"
        else:
            return snapshot
        raise ProviderError(f"refused to {action} snapshot {snapshot_id}: not a backup of environment "
                            f"{self.backups_environment} ({reason})",
                            hint="drbootstrap only acts on the environment's own tagged backups")
