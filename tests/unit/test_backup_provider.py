"""Backups at the provider: the local cloud's snapshots carry the catalog's tags, are listed by
environment, re-tagged, and deleted only when they are the environment's own (by any of its
sites' providers); the agent's
manifest and hooks act only on what its configuration names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drbootstrap.backups.catalog import BackupRecord, backup_tags, verified_tags
from drbootstrap.errors import NotFoundError, ProviderError
from drbootstrap.providers.registry import create_provider
from drbootstrap.providers.settings import ProviderSettings
from drbootstrap.providers.values import EnvironmentScope
from drbootstrap.providers.volumes import volume_name


def _local(tmp_path: Path, environment: str = "prod"):
    settings = ProviderSettings(name="local", network="10.250.7.0/24")
    return create_provider(settings, EnvironmentScope(environment, tmp_path, tmp_path / "key"))


def _tags(environment: str = "prod", created: float = 1700000000.0) -> dict[str, str]:
    return backup_tags(BackupRecord(id="", kind="snapshot", environment=environment, hostname="db01", name="data",
                                    created_at=created, size_bytes=None, manifest_digest="ab" * 32))


def test_a_local_snapshot_is_tagged_listed_retagged_and_deleted(tmp_path: Path) -> None:
    provider = _local(tmp_path)
    driver = provider.driver()
    volume = driver.create_volume(1, volume_name("prod", "db01", "data"))
    (Path(volume.extra["path"]) / "known.txt").write_text("known data\n")
    snapshot_id = provider.snapshot_volume("db01", "data", _tags())
    driver.create_volume_snapshot(volume, name="someone-elses")  # untagged: never ours

    [record] = provider.list_backups("prod")
    assert (record.id, record.hostname, record.name, record.good) == (snapshot_id, "db01", "data", True)
    assert record.size_bytes == len("known data\n") and record.location == "local"
    assert provider.list_backups("other") == []

    provider.tag_backup(snapshot_id, verified_tags(True, 1700000500.0))
    assert provider.list_backups("prod")[0].verified_ok is True

    provider.delete_backup(snapshot_id)
    assert provider.list_backups("prod") == []


def test_a_snapshot_of_another_environment_or_untagged_is_never_deleted(tmp_path: Path) -> None:
    production, drill = _local(tmp_path, "prod"), _local(tmp_path, "drill-prod")
    driver = production.driver()
    volume = driver.create_volume(1, volume_name("prod", "db01", "data"))
    snapshot_id = production.snapshot_volume("db01", "data", _tags())
    foreign = driver.create_volume_snapshot(volume, name="manual")
    with pytest.raises(ProviderError, match="belongs to environment 'prod'"):
        drill.delete_backup(snapshot_id)
    with pytest.raises(ProviderError, match="not a drbootstrap backup"):
        production.delete_backup(foreign.id)
    with pytest.raises(NotFoundError):
        production.delete_backup("snap-missing")
    drill.tag_backup(snapshot_id, verified_tags(False, 1700000600.0))  # a drill records what it verified
    assert production.list_backups("prod")[0].verified_ok is False


SITES_SPEC = """
environment: prod
domain: prod.internal
provider: {name: local, network: 10.250.7.0/24}
nodes:
  - role: db
    hostnames: [db01]
    volumes: [{name: data, mount: /srv/data, size_gb: 1}]
sites:
  - {name: b, provider: {name: local, network: 10.250.8.0/24}}
"""


def test_every_sites_provider_owns_the_environments_backups_and_no_other(tmp_path: Path) -> None:
    from drbootstrap.failover.sites import provider_at, sites_of
    from drbootstrap.spec import load_spec

    spec_file = tmp_path / "prod.yaml"
    spec_file.write_text(SITES_SPEC)
    spec = load_spec(spec_file)
    state_dir = tmp_path / "state"
    primary, site_b = (provider_at(spec, state_dir, site) for site in sites_of(spec).values())
    assert site_b.environment == "prod.b"  # the cloud's name for the site: its nodes and volumes
    assert primary.backups_environment == site_b.backups_environment == "prod"
    # The local cloud's snapshots are shared by both sites, tagged with the environment's own name.
    site_b.driver().create_volume(1, volume_name("prod.b", "db01", "data"))
    taken_at_b = site_b.snapshot_volume("db01", "data", _tags("prod", created=1700000000.0))
    primary.driver().create_volume(1, volume_name("prod", "db01", "data"))
    taken_at_primary = primary.snapshot_volume("db01", "data", _tags("prod", created=1700000100.0))
    assert [r.id for r in site_b.list_backups("prod")] == [taken_at_b, taken_at_primary]

    site_b.delete_backup(taken_at_primary)  # `backup --prune --site b`
    primary.delete_backup(taken_at_b)
    assert site_b.list_backups("prod") == []
    drill = _local(tmp_path / "state", "drill-prod")
    kept = primary.snapshot_volume("db01", "data", _tags("prod"))
    with pytest.raises(ProviderError, match="belongs to environment 'prod', not 'drill-prod'"):
        drill.delete_backup(kept)


def test_snapshotting_a_volume_up_never_made_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no volume data"):
        _local(tmp_path).snapshot_volume("db01", "data", _tags())


def test_discarding_a_volume_destroys_it_by_name(tmp_path: Path) -> None:
    provider = _local(tmp_path)
    provider.driver().create_volume(1, volume_name("prod", "db01", "data"))
    assert provider.discard_volume(None, "db01", "data") is True
    assert provider.driver().list_volumes() == []
    assert provider.discard_volume(None, "db01", "data") is False


# ---- the agent ------------------------------------------------------------------------------


def _agent(tmp_path: Path, **volume: object):
    from drbootstrap.agent.actions.backup import BackupAgent
    from drbootstrap.agent.config import agent_config_from_dict
    from drbootstrap.agent.registry import AgentContext

    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    config = agent_config_from_dict({"identity": "db01.demo.internal",
                                     "backup": {"volumes": {"data": {"path": str(data), **volume}},
                                                "max_files": 50, "max_bytes": 10_000}})
    return BackupAgent(AgentContext(config=config, facts=None)), data  # type: ignore[arg-type]


def test_the_manifest_changes_with_any_byte_and_follows_no_link(tmp_path: Path) -> None:
    agent, data = _agent(tmp_path)
    (data / "db.sqlite").write_bytes(b"\x00" * 100)
    (data / "sub").mkdir()
    (data / "sub" / "a.txt").write_text("a")
    outside = tmp_path / "secret"
    outside.write_text("not the volume's")
    os.symlink(outside, data / "link")
    first = agent.manifest(None, {"volume": "data"})
    assert first["files"] == 4 and first["bytes"] == 101
    (data / "db.sqlite").write_bytes(b"\x00" * 99 + b"\x01")
    assert agent.manifest(None, {"volume": "data"})["digest"] != first["digest"]
    outside.write_text("changed outside")  # a link's target is not read
    (data / "db.sqlite").write_bytes(b"\x00" * 100)
    assert agent.manifest(None, {"volume": "data"})["digest"] == first["digest"]


def test_the_manifest_refuses_an_unknown_volume_and_past_its_limits(tmp_path: Path) -> None:
    from drbootstrap.agent.registry import ActionFailed, validate_inputs

    agent, data = _agent(tmp_path)
    with pytest.raises(ActionFailed, match="no volume 'etc'"):
        agent.manifest(None, {"volume": "etc"})
    with pytest.raises(ActionFailed, match="invalid format"):
        validate_inputs(type(agent).actions()["manifest"], {"volume": "../../etc"})
    with pytest.raises(ActionFailed, match="unknown input 'path'"):
        validate_inputs(type(agent).actions()["manifest"], {"volume": "data", "path": "/"})
    (data / "big").write_bytes(b"x" * 20_000)
    with pytest.raises(ActionFailed, match="more than 10000 bytes"):
        agent.manifest(None, {"volume": "data"})


def test_hooks_run_only_as_configured_with_a_timeout(tmp_path: Path) -> None:
    from drbootstrap.agent.registry import ActionFailed

    marker = tmp_path / "post-ran"
    agent, data = _agent(tmp_path, pre_snapshot="echo flushing; exit 3",
                         post_snapshot=f'test -d "$DRB_VOLUME_PATH" && touch {marker}', hook_timeout=5)
    with pytest.raises(ActionFailed, match="pre_snapshot of data exited 3") as failed:
        agent.hook(None, {"volume": "data", "hook": "pre_snapshot"})
    assert "flushing" in failed.value.data["output"]
    assert agent.hook(None, {"volume": "data", "hook": "post_snapshot"})["ran"] is True
    assert marker.exists()
    child = tmp_path / "child-lived"
    slow, _ = _agent(tmp_path, pre_snapshot=f"(sleep 1; touch {child}) & sleep 5", hook_timeout=0.2)
    with pytest.raises(ActionFailed, match="timed out after 0 s"):
        slow.hook(None, {"volume": "data", "hook": "pre_snapshot"})
    import time

    time.sleep(1.5)
    assert not child.exists()  # what the hook started ended with it
    unhooked, _ = _agent(tmp_path)
    assert unhooked.hook(None, {"volume": "data", "hook": "pre_snapshot"})["ran"] is False


def test_a_node_learns_its_backed_up_volumes_from_its_user_data() -> None:
    import yaml

    from drbootstrap.agent.config import agent_config_from_dict
    from drbootstrap.images.from_spec import agent_backup_settings
    from drbootstrap.spec.models import NodeGroup

    group = NodeGroup.model_validate({"role": "db", "hostnames": ["db01"], "volumes": [
        {"name": "data", "mount": "/srv/db", "size_gb": 1, "backup": {"pre_snapshot": "sync"}},
        {"name": "scratch", "mount": "/tmp/x", "size_gb": 1}]})
    settings = agent_backup_settings(group, "/state/nodes/db01/root")
    assert settings is not None
    config = agent_config_from_dict({"identity": "db01", **yaml.safe_load(settings)})
    assert config.backup is not None and list(config.backup.volumes) == ["data"]
    assert config.backup.volumes["data"].path == "/state/nodes/db01/root/srv/db"
    assert config.backup.volumes["data"].pre_snapshot == "sync"
    assert agent_backup_settings(NodeGroup.model_validate({"role": "web", "hostnames": ["web01"]})) is None


def test_backups_lists_the_catalog_as_a_table_and_as_versioned_json(tmp_path: Path, cli, monkeypatch) -> None:
    import json

    spec = tmp_path / "env.yaml"
    spec.write_text("environment: prod\ndomain: demo.internal\nprovider: {name: local, network: 10.250.7.0/24}\n"
                    "master: {hostname: controller, image: master}\nnodes:\n  - role: db\n    hostnames: [db01]\n"
                    "    volumes: [{name: data, mount: /srv/db, size_gb: 1, backup: {}}]\n")
    state = tmp_path / "state"
    provider = _local(state)
    provider.driver().create_volume(1, volume_name("prod", "db01", "data"))
    snapshot_id = provider.snapshot_volume("db01", "data", _tags())
    provider.tag_backup(snapshot_id, verified_tags(True, 1700000500.0))

    table = cli("backups", str(spec), "--state-dir", str(state))
    assert table.exit_code == 0, table.stderr
    assert snapshot_id in table.stdout and "ok 2023-11-14T22:21:40Z" in table.stdout
    listed = cli("backups", str(spec), "--state-dir", str(state), "--json")
    data = json.loads(listed.stdout)
    assert data["schema_version"] == 1 and data["environment"] == "prod"
    [entry] = data["backups"]
    assert entry["id"] == snapshot_id and entry["verified_ok"] is True and entry["age_seconds"] > 0
    assert cli("backups", str(spec), "--state-dir", str(state), "--environment", "other").stdout.startswith(
        "other: no backups yet")


def test_copying_a_backup_to_another_local_site_is_the_backup_itself_and_only_the_environments(
        tmp_path: Path) -> None:
    from drbootstrap.backups.take import BackupRun, VolumeBackup, copy_sites, copy_to_sites
    from drbootstrap.failover.sites import provider_at, sites_of
    from drbootstrap.paths import EnvironmentPaths
    from drbootstrap.spec import load_spec

    spec_file = tmp_path / "prod.yaml"
    spec_file.write_text(SITES_SPEC.replace("{name: b, provider", "{name: b, copy_backups: true, provider"))
    spec, state_dir = load_spec(spec_file), tmp_path / "state"
    primary = provider_at(spec, state_dir, sites_of(spec)["primary"])
    primary.driver().create_volume(1, volume_name("prod", "db01", "data"))
    taken = primary.snapshot_volume("db01", "data", _tags("prod"))
    assert primary.copy_backup(taken, "") == taken  # one snapshot store both sites see

    sites = copy_sites(spec, EnvironmentPaths(state_dir, "prod"))
    assert [s.name for s in sites] == ["b"] and copy_sites(spec, EnvironmentPaths(state_dir, "prod", "b")) == []
    run = BackupRun("prod", volumes=[VolumeBackup("db01", "data", taken, good=True),
                                     VolumeBackup("db01", "logs", "snap-missing", good=True),
                                     VolumeBackup("db01", "tmp", "snap-not-good", good=False)])
    copy_to_sites(spec, primary, run, sites)
    [copy] = run.copies
    assert (copy.where, copy.site, copy.shared) == ("db01/data", "b", True)
    assert len(run.site_failures) == 1 and "copy of db01/logs backup snap-missing to site b failed" in \
        run.site_failures[0]
    assert int(run.exit_status) == 7

    drill = _local(tmp_path / "state", "drill-prod")
    with pytest.raises(ProviderError, match="refused to copy"):
        drill.copy_backup(taken, "")
