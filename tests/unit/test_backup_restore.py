"""Choosing what to restore and what to prune, taking a backup with its hooks, and restoring with
verification and fallback through the executor's volumes step (fake cloud and agents)."""

from __future__ import annotations

from typing import Any

import pytest
from libcloud.compute.base import VolumeSnapshot

from drbootstrap.backups.catalog import BackupRecord, backup_tags, record_from_tags
from drbootstrap.backups.choose import (
    MarkedVolume,
    RestoreRequest,
    choose_restores,
    parse_time,
    prunable,
)
from drbootstrap.errors import BackupError, MessagingError
from drbootstrap.executor.context import UpOptions
from drbootstrap.exit_status import ExitStatus
from tests.unit.executor_fakes import SPEC, FakeBroker, FakeCloud, FakeFleet, load_spec_text, make_context, world

__all__ = ["world"]
DAY = 86_400.0
NOW = 1_800_000_000.0


def _record(backup_id: str, age_days: float, *, good: bool = True, verified: bool | None = None,
            hostname: str = "db01", environment: str = "demo") -> BackupRecord:
    return BackupRecord(id=backup_id, kind="snapshot", environment=environment, hostname=hostname, name="data",
                        created_at=NOW - age_days * DAY, size_bytes=10, manifest_digest=f"digest-{backup_id}",
                        good=good, verified_ok=verified, verified_at=NOW if verified is not None else None)


CATALOG = [_record("snap-old", 3), _record("snap-mid", 2), _record("snap-bad", 1.5, good=False),
           _record("snap-new", 1), _record("snap-other", 0.5, environment="elsewhere")]
DB = [MarkedVolume("db01", "data", fallback=True)]


def test_the_newest_good_backup_is_restored_with_the_older_ones_as_fallbacks() -> None:
    restore = choose_restores(CATALOG, DB, RestoreRequest("demo"))[("db01", "data")]
    assert [r.id for r in restore.candidates] == ["snap-new", "snap-mid", "snap-old"]


def test_as_of_and_backup_id_pick_an_older_backup() -> None:
    as_of = choose_restores(CATALOG, DB, RestoreRequest("demo", as_of=NOW - 1.8 * DAY))[("db01", "data")]
    assert [r.id for r in as_of.candidates] == ["snap-mid", "snap-old"]
    pinned = choose_restores(CATALOG, DB, RestoreRequest("demo", backup_ids=("snap-mid",)))[("db01", "data")]
    assert pinned.chosen is not None and pinned.chosen.id == "snap-mid"


@pytest.mark.parametrize(("request_", "message"), [
    (RestoreRequest("demo", as_of=NOW - 10 * DAY), r"--as-of 2027-01-05T08:00:00Z is before every backup of db01/data "
                                                   r"\(the oldest is from .*\): nothing launched"),
    (RestoreRequest("demo", backup_ids=("snap-nope",)), "--backup snap-nope: no backup of that id for environment "
                                                        "'demo': nothing launched"),
    (RestoreRequest("demo", backup_ids=("snap-other",)), "--backup snap-other: no backup of that id"),
    (RestoreRequest("demo", backup_ids=("snap-bad",)), "that backup is not good"),
    (RestoreRequest("fresh", as_of=NOW), "db01/data has no backup yet in environment 'fresh': nothing launched"),
])
def test_what_was_asked_and_matches_nothing_is_refused_in_one_line(request_: RestoreRequest, message: str) -> None:
    with pytest.raises(BackupError, match=message) as refused:
        choose_restores(CATALOG, DB, request_)
    assert "\n" not in str(refused.value) and refused.value.exit_status == ExitStatus.BACKUP == 13


def test_a_volume_with_no_backup_yet_starts_empty_on_a_plain_up() -> None:
    restore = choose_restores(CATALOG, DB, RestoreRequest("fresh"))[("db01", "data")]
    assert restore.chosen is None


def test_prune_keeps_the_newest_and_never_the_newest_verified() -> None:
    records = [_record("a", 40, verified=True), _record("b", 35), _record("c", 20), _record("d", 1),
               _record("x", 30, good=False)]
    assert [r.id for r in prunable(records, keep_last=2, max_age_days=None, now=NOW)] == ["b", "x"]
    assert [r.id for r in prunable(records, keep_last=1, max_age_days=30, now=NOW)] == ["b", "x"]
    assert [r.id for r in prunable(records, keep_last=None, max_age_days=10, now=NOW)] == ["b", "x", "c"]
    assert prunable(records, keep_last=None, max_age_days=None, now=NOW) == []


def test_as_of_takes_iso_times_epochs_and_ages() -> None:
    assert parse_time("2026-11-25T14:00:00Z") == parse_time("2026-11-25T14:00:00")
    assert parse_time("1800000000") == 1_800_000_000.0
    assert parse_time("2h", now=NOW) == NOW - 7200 and parse_time("30min ago", now=NOW) == NOW - 1800
    with pytest.raises(BackupError, match="--as-of 'yesterday-ish' is not a time"):
        parse_time("yesterday-ish")


# ---- taking a backup -----------------------------------------------------------------------------


class SnapshotCloud(FakeCloud):
    """The fake cloud with tagged snapshots; a volume made from one holds that snapshot's content."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshots: list[VolumeSnapshot] = []
        self.content: dict[str, str] = {}  # volume or snapshot id -> what it holds

    def create_volume(self, size: int, name: str, snapshot: Any = None) -> Any:
        volume = super().create_volume(size, name, snapshot)
        volume.id = f"vol-{len(self.content) + len(self.volumes)}"
        self.content[volume.id] = self.content.get(getattr(snapshot, "id", ""), "empty")
        return volume

    def detach_volume(self, volume: Any) -> bool:
        volume.extra["node_id"] = None
        return True

    def create_volume_snapshot(self, volume: Any, name: str | None = None, ex_metadata: dict | None = None) -> Any:
        snapshot = VolumeSnapshot(f"snap-{len(self.snapshots)}", self, size=1, name=name,
                                  extra={"tags": dict(ex_metadata or {})})
        self.snapshots.append(snapshot)
        self.content[snapshot.id] = self.content.get(volume.id, "empty")
        return snapshot

    def list_snapshots(self) -> list[VolumeSnapshot]:
        return list(self.snapshots)

    def destroy_volume_snapshot(self, snapshot: Any) -> bool:
        self.snapshots.remove(snapshot)
        return True

    def ex_create_tags(self, resource: Any, tags: dict) -> bool:
        resource.extra["tags"].update(tags)
        return True

    def add_backup(self, content: str, created_at: float, manifest: str) -> str:
        record = BackupRecord(id="", kind="snapshot", environment="demo", hostname="db01", name="data",
                              created_at=created_at, size_bytes=None, manifest_digest=manifest)
        snapshot = VolumeSnapshot(f"snap-{len(self.snapshots)}", self, size=1, extra={"tags": backup_tags(record)})
        self.snapshots.append(snapshot)
        self.content[snapshot.id] = content
        return snapshot.id


class BackupFleet(FakeFleet):
    """Agents whose manifest digest is the volume's content; hooks fail where told."""

    def __init__(self, broker: FakeBroker, cloud: SnapshotCloud, failing_hooks: set[str] = frozenset()) -> None:
        super().__init__(broker)
        self.cloud, self.failing_hooks, self.hooks_run = cloud, failing_hooks, []

    def call(self, identity: str, agent: str, action: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        if agent != "backup":
            return super().call(identity, agent, action, data, timeout)
        if action == "hook":
            self.hooks_run.append(data["hook"])
            if data["hook"] in self.failing_hooks:
                raise MessagingError(f"{identity}: backup.hook failed: {data['hook']} of data exited 3")
            return {"ran": True}
        volume = next(v for v in self.cloud.volumes if v.name.endswith(f"-{identity.split('.')[0]}-{data['volume']}"))
        return {"digest": f"digest-of-{self.cloud.content[volume.id]}", "files": 3, "bytes": 42}


MARKED = SPEC.replace("volumes: [{name: data, mount: /srv/db, size_gb: 1}]",
                      "volumes: [{name: data, mount: /srv/db, size_gb: 1, backup: {fallback: older}}]")


def _up(world: Any, monkeypatch: Any, cloud: SnapshotCloud, options: UpOptions | None = None, *,
        spec_text: str = MARKED) -> Any:
    from drbootstrap.executor.run import run_up
    from drbootstrap.executor.volume_restore import choose_for_run
    from drbootstrap.plan import build_plan
    from drbootstrap.report import build_report

    _, state_dir, _, _, access = world
    spec = load_spec_text(monkeypatch, spec_text)
    broker = FakeBroker(cloud)
    ctx = make_context(spec, state_dir, cloud, broker, access, options=options)
    ctx.fleet_factory = lambda address: BackupFleet(broker, cloud)
    ctx.restores = choose_for_run(ctx)
    result = run_up(ctx)
    report = build_report(ctx.journal, result.outcomes, run_started=result.started_at,
                          run_finished=result.finished_at, plan=build_plan(spec))
    return result, report


def test_a_corrupted_newest_backup_is_named_and_the_older_one_restored_and_verified(world: Any,
                                                                                     monkeypatch: Any) -> None:
    cloud = SnapshotCloud()
    good = cloud.add_backup("first data", NOW - 2 * DAY, "digest-of-first data")
    corrupt = cloud.add_backup("flipped bytes", NOW - DAY, "digest-of-second data")
    result, report = _up(world, monkeypatch, cloud)
    assert result.exit_status == ExitStatus.OK
    [restored] = report["backups"]
    assert restored["backup_id"] == good and restored["verified"] == "ok"
    assert restored["failed_verification"] == [corrupt]
    tags = {s.id: record_from_tags(s.id, s.extra["tags"]) for s in cloud.snapshots}
    assert tags[corrupt].verified_ok is False and tags[good].verified_ok is True
    from drbootstrap.report.markdown import render_markdown

    text = render_markdown(report)
    assert f"| db01 | data | {good} |" in text and corrupt in text


def test_without_fallback_a_failed_verification_fails_the_node_with_exit_13(world: Any, monkeypatch: Any) -> None:
    cloud = SnapshotCloud()
    cloud.add_backup("first data", NOW - 2 * DAY, "digest-of-first data")
    corrupt = cloud.add_backup("flipped bytes", NOW - DAY, "digest-of-second data")
    result, report = _up(world, monkeypatch, cloud, spec_text=MARKED.replace("fallback: older", "fallback: none"))
    assert result.exit_status == ExitStatus.BACKUP
    failure = result.outcomes["db01"]
    assert failure.step == "volumes" and f"backup {corrupt} of db01/data failed verification" in failure.reason


def test_a_first_up_with_no_backup_yet_starts_the_volume_empty_and_says_so(world: Any, monkeypatch: Any) -> None:
    result, report = _up(world, monkeypatch, SnapshotCloud())
    assert result.exit_status == ExitStatus.OK
    assert report["backups"] == [{"hostname": "db01", "kind": "snapshot", "volume": "data", "backup_id": None,
                                  "backup_created_at": None, "rpo_seconds": None, "verified": None,
                                  "failed_verification": []}]


def test_as_of_restores_the_first_backup(world: Any, monkeypatch: Any) -> None:
    cloud = SnapshotCloud()
    first = cloud.add_backup("first data", NOW - 2 * DAY, "digest-of-first data")
    cloud.add_backup("second data", NOW - DAY, "digest-of-second data")
    _, report = _up(world, monkeypatch, cloud, UpOptions(as_of=NOW - 1.5 * DAY))
    assert report["backups"][0]["backup_id"] == first and report["backups"][0]["verified"] == "ok"


def test_a_failing_pre_snapshot_records_no_good_backup_and_post_snapshot_still_runs(world: Any,
                                                                                    monkeypatch: Any) -> None:
    from drbootstrap.backups.take import back_up
    from drbootstrap.executor.run import run_up

    _, state_dir, _, _, access = world
    cloud = SnapshotCloud()
    spec = load_spec_text(monkeypatch, MARKED)
    broker = FakeBroker(cloud)
    ctx = make_context(spec, state_dir, cloud, broker, access)
    ctx.fleet_factory = lambda address: BackupFleet(broker, cloud)
    run_up(ctx)
    fleet = BackupFleet(broker, cloud, failing_hooks={"pre_snapshot"})
    run = back_up(spec, ctx.provider, fleet, clock=lambda: NOW)
    assert fleet.hooks_run == ["pre_snapshot", "post_snapshot"]
    assert run.exit_status == ExitStatus.PARTIAL
    [one] = run.failed
    assert one.problems == ["pre_snapshot failed: db01.demo.internal: backup.hook failed: "
                            "pre_snapshot of data exited 3"]
    assert [r.good for r in ctx.provider.list_backups("demo")] == [False]

    fine = BackupFleet(broker, cloud)
    run = back_up(spec, ctx.provider, fine, clock=lambda: NOW + 1)
    assert run.exit_status == ExitStatus.OK and fine.hooks_run == ["pre_snapshot", "post_snapshot"]
    catalog = ctx.provider.list_backups("demo")
    assert [r.good for r in catalog] == [False, True] and catalog[1].manifest_digest == "digest-of-empty"


def test_backup_prune_deletes_through_the_provider_what_retention_allows(world: Any, monkeypatch: Any) -> None:
    from drbootstrap.backups.take import back_up
    from drbootstrap.executor.run import run_up

    _, state_dir, _, _, access = world
    cloud = SnapshotCloud()
    spec = load_spec_text(monkeypatch, MARKED.replace("backup: {fallback: older}", "backup: {keep_last: 2}"))
    broker = FakeBroker(cloud)
    ctx = make_context(spec, state_dir, cloud, broker, access)
    ctx.fleet_factory = lambda address: BackupFleet(broker, cloud)
    run_up(ctx)
    foreign = cloud.add_backup("someone else's", NOW - 9 * DAY, "x")
    cloud.snapshots[-1].extra["tags"]["drbootstrap:environment"] = "production"
    for offset in range(3):
        back_up(spec, ctx.provider, BackupFleet(broker, cloud), clock=lambda offset=offset: NOW + offset)
    run = back_up(spec, ctx.provider, BackupFleet(broker, cloud), prune=True, clock=lambda: NOW + 3)
    assert len(run.pruned) == 2 and {r.created_at for r in run.pruned} == {NOW, NOW + 1}
    assert [r.created_at for r in ctx.provider.list_backups("demo")] == [NOW + 2, NOW + 3]
    assert foreign in {s.id for s in cloud.snapshots}  # another environment's: never touched


def test_a_spec_without_marked_volumes_has_nothing_to_back_up(world: Any, monkeypatch: Any) -> None:
    from drbootstrap.backups.take import back_up

    spec = load_spec_text(monkeypatch)
    with pytest.raises(BackupError, match="no volume is marked `backup:`"):
        back_up(spec, None, None)  # type: ignore[arg-type]
