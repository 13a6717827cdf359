"""`drbootstrap backup` and `backups` as library calls: snapshot every volume the spec marks, each
consistent by its hooks and tagged with its content manifest; prune by retention; read the catalog.

Per volume, through the node's backup agent and the provider: pre_snapshot, the manifest computed
on the node, the snapshot (tagged good only when the hook and the manifest succeeded), and
post_snapshot, which runs whatever happened before it. With a bucket, the application dumps
(backups.dumps) and the master's own state (backups.master_state) go there too. Then each new good
snapshot is copied to the sites whose spec says `copy_backups: true`, and with `--prune` retention is
applied there too; `--prune-only` applies retention alone, without the agents.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from drbootstrap.backups.catalog import BackupRecord, backup_tags
from drbootstrap.backups.choose import prunable
from drbootstrap.backups.dumps import DumpsTaken, dumps_in_spec, list_dumps, prune_dumps, take_dumps
from drbootstrap.backups.master_state import MasterStateTaken, take_master_state
from drbootstrap.errors import BackupError, DrbError, ProviderError
from drbootstrap.exit_status import ExitStatus
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import PlannedNode, build_plan
from drbootstrap.providers.base import Provider
from drbootstrap.spec.models import EnvironmentSpec, SiteSpec, VolumeSpec

MANIFEST_TIMEOUT = 960.0  # the agent gives up a manifest at 900 s
HOOK_MARGIN = 30.0  # beyond the hook's own timeout, for the request and reply


@dataclass
class VolumeBackup:
    """One volume's backup in this run: the snapshot taken (if any), whether it is good, why not."""

    hostname: str
    volume: str
    snapshot_id: str | None = None
    good: bool = False
    files: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)  # one line each: a hook or the manifest failed

    @property
    def where(self) -> str:
        return f"{self.hostname}/{self.volume}"


@dataclass(frozen=True)
class SiteCopy:
    """One new good snapshot copied to a site whose spec says `copy_backups: true`. `copy_id` equal to
    `snapshot_id`: the site sees the same snapshot store, nothing was copied."""

    where: str  # hostname/volume
    snapshot_id: str
    site: str
    copy_id: str

    @property
    def shared(self) -> bool:
        return self.copy_id == self.snapshot_id


@dataclass
class BackupRun:
    environment: str
    volumes: list[VolumeBackup] = field(default_factory=list)
    pruned: list[BackupRecord] = field(default_factory=list)
    dumps: DumpsTaken = field(default_factory=lambda: DumpsTaken([], []))
    master: MasterStateTaken = field(default_factory=MasterStateTaken)
    copies: list[SiteCopy] = field(default_factory=list)
    site_failures: list[str] = field(default_factory=list)  # one line each: a copy or a prune at a site failed

    @property
    def failed(self) -> list[VolumeBackup]:
        return [v for v in self.volumes if v.problems or not v.good]

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.PARTIAL if (self.failed or self.dumps.failures or self.master.failure
                                      or self.site_failures) else ExitStatus.OK


class AgentCalls(Protocol):
    """What backing up asks of the nodes' agents (the RPC client, or a fake in tests)."""

    def call(self, identity: str, agent: str, action: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        """agent.action on one node; its reply data. Raises a DrbError on silence or a failed status."""


def marked(spec: EnvironmentSpec) -> list[tuple[PlannedNode, VolumeSpec]]:
    """Every (node, volume) the spec marks `backup:`, in plan order."""
    return [(planned, volume) for planned in build_plan(spec).nodes() if planned.group is not None
            for volume in planned.group.volumes if volume.backup is not None]


def back_up(spec: EnvironmentSpec, provider: Provider, fleet: AgentCalls, *, prune: bool = False,
            on_volume: Callable[[VolumeBackup], None] = lambda v: None,
            clock: Callable[[], float] = time.time) -> BackupRun:
    """Back up every marked volume of the running environment; then, with PRUNE, delete what
    retention allows. Raises BackupError when the spec marks no volume and has no bucket."""
    volumes = marked(spec)
    if not volumes and not dumps_in_spec(spec) and spec.buckets is None:
        raise BackupError(f"{spec.source_path or spec.environment}: no volume is marked `backup:`: nothing to back up",
                          hint="add `backup: {}` to the volumes to back up")
    run = BackupRun(spec.environment)
    running = provider.nodes()
    for planned, volume in volumes:
        if planned.hostname not in running:
            one = VolumeBackup(planned.hostname, str(volume.name),
                               problems=[f"{planned.hostname} is not running in the cloud: nothing backed up"])
        else:
            one = _back_up_volume(spec, provider, fleet, planned, volume, clock)
        run.volumes.append(one)
        on_volume(one)
    run.dumps = take_dumps(spec, fleet)  # the application dumps to the spec's bucket, if it has any
    run.master = take_master_state(spec, fleet)  # and the master's own state (its Puppet CA, code, config)
    if prune:
        run.pruned = prune_backups(spec, provider, clock())
        if spec.buckets is not None:
            run.pruned += prune_dumps(spec.buckets, spec.environment, now=clock())
    return run


def _back_up_volume(spec: EnvironmentSpec, provider: Provider, fleet: AgentCalls, planned: PlannedNode,
                    volume: VolumeSpec, clock: Callable[[], float]) -> VolumeBackup:
    assert volume.backup is not None
    one = VolumeBackup(planned.hostname, str(volume.name))
    hook_timeout = volume.backup.hook_timeout_seconds + HOOK_MARGIN
    digest = None
    try:
        try:
            fleet.call(planned.fqdn, "backup", "hook", {"volume": one.volume, "hook": "pre_snapshot"}, hook_timeout)
        except DrbError as error:
            one.problems.append(f"pre_snapshot failed: {error.message}")
        if not one.problems:
            try:
                data = fleet.call(planned.fqdn, "backup", "manifest", {"volume": one.volume}, MANIFEST_TIMEOUT)
                digest, one.files, one.bytes = str(data["digest"]), int(data["files"]), int(data["bytes"])
            except (DrbError, KeyError, TypeError, ValueError) as error:
                one.problems.append(f"manifest failed: {getattr(error, 'message', error)}")
        record = BackupRecord(id="", kind="snapshot", environment=spec.environment, hostname=one.hostname,
                              name=one.volume, created_at=clock(), size_bytes=None, manifest_digest=digest,
                              good=not one.problems)
        try:
            one.snapshot_id = provider.snapshot_volume(one.hostname, one.volume, backup_tags(record))
            one.good = record.good
        except DrbError as error:
            one.problems.append(f"snapshot failed: {error}")
    finally:
        try:  # whatever happened: unlock, unfreeze
            fleet.call(planned.fqdn, "backup", "hook", {"volume": one.volume, "hook": "post_snapshot"}, hook_timeout)
        except DrbError as error:
            one.problems.append(f"post_snapshot failed: {error.message}")
    return one


def prune_backups(spec: EnvironmentSpec, provider: Provider, now: float) -> list[BackupRecord]:
    """Delete, through the provider, each marked volume's backups that its retention allows."""
    catalog = provider.list_backups(spec.environment)
    deleted = []
    for planned, volume in marked(spec):
        assert volume.backup is not None
        mine = [r for r in catalog if r.hostname == planned.hostname and r.name == volume.name]
        for record in prunable(mine, keep_last=volume.backup.keep_last, max_age_days=volume.backup.max_age_days,
                               now=now):
            provider.delete_backup(record.id)
            deleted.append(record)
    return deleted


def copy_to_sites(spec: EnvironmentSpec, provider: Provider, run: BackupRun, sites: Sequence[SiteSpec]) -> None:
    """Copy each new good snapshot of RUN to every one of SITES (those saying `copy_backups: true`)
    through the provider that took it; a failure is one line in run.site_failures."""
    for site in sites:
        for one in run.volumes:
            if not (one.good and one.snapshot_id):
                continue
            try:
                copy_id = provider.copy_backup(one.snapshot_id, str(site.provider.region or ""))
            except DrbError as error:
                run.site_failures.append(f"copy of {one.where} backup {one.snapshot_id} to site {site.name} "
                                         f"failed: {error.message}")
                continue
            run.copies.append(SiteCopy(one.where, one.snapshot_id, site.name, copy_id))


def prune_at_sites(spec: EnvironmentSpec, state_dir: Path, run: BackupRun, sites: Sequence[SiteSpec],
                   now: float) -> None:
    """Each volume's retention applied at every one of SITES too, through that site's provider."""
    from drbootstrap.failover.sites import Site, provider_at

    for site in sites:
        try:
            pruned = prune_backups(spec, provider_at(spec, state_dir, Site(site.name, site.provider)), now)
        except DrbError as error:
            run.site_failures.append(f"prune at site {site.name} failed: {error.message}")
            continue
        known = {r.id for r in run.pruned}  # one snapshot store both sites see: pruned once, at the first
        run.pruned += [r for r in pruned if r.id not in known]


def copy_sites(spec: EnvironmentSpec, paths: EnvironmentPaths) -> list[SiteSpec]:
    """The sites `backup` copies to: those saying `copy_backups: true`, but the one backed up."""
    return [site for site in spec.sites if site.copy_backups and site.name != paths.site]


def prune_backups_only(spec: EnvironmentSpec, state_dir: Path, paths: EnvironmentPaths | None = None,
               clock: Callable[[], float] = time.time) -> BackupRun:
    """`drbootstrap backup --prune-only`: retention applied, nothing taken, no agent needed (the
    environment may be down): the snapshots at the provider and at every `copy_backups` site, the
    bucket's dumps. Holds the environment as take_backups does."""
    from drbootstrap.environment_lock import hold_environment
    from drbootstrap.executor.build import provider_for
    from drbootstrap.state import hold_state, state_settings

    paths = paths or EnvironmentPaths(state_dir, spec.environment)

    def prune() -> BackupRun:
        if not marked(spec) and spec.buckets is None:
            raise BackupError(f"{spec.source_path or spec.environment}: no volume is marked `backup:`: "
                              "nothing to prune", hint="add `backup: {keep_last: N}` to the volumes backed up")
        run, now = BackupRun(spec.environment), clock()
        run.pruned = prune_backups(spec, provider_for(spec, paths), now) if marked(spec) else []
        if marked(spec):
            prune_at_sites(spec, state_dir, run, copy_sites(spec, paths), now)
        if spec.buckets is not None:
            run.pruned += prune_dumps(spec.buckets, spec.environment, now=now)
        return run

    with hold_state(spec, paths, "backup"):
        if state_settings(spec).backend != "local":
            return prune()
        with hold_environment(paths, "backup", lock=paths.failover_lock):
            return prune()


def take_backups(spec: EnvironmentSpec, state_dir: Path, *, prune: bool = False,
                 on_volume: Callable[[VolumeBackup], None] = lambda v: None,
                 paths: EnvironmentPaths | None = None) -> BackupRun:
    """`drbootstrap backup`: the provider and the agents of the running environment, then back_up.
    `paths`: the environment at another site (`backup --site`; `spec` then has that site's provider);
    its snapshots are tagged with the environment's own name, so every site's `up` can restore them.
    Holds the environment as `up` and `down` do (its lock, or its lease on s3 state) and, with local
    state, failover's lock as well: a backup never runs while they change it (EnvironmentBusy)."""
    from drbootstrap.environment_lock import hold_environment
    from drbootstrap.state import hold_state, state_settings

    paths = paths or EnvironmentPaths(state_dir, spec.environment)
    with hold_state(spec, paths, "backup"):
        if state_settings(spec).backend != "local":  # the lease covers failover too
            return _take_backups(spec, state_dir, paths, prune, on_volume)
        with hold_environment(paths, "backup", lock=paths.failover_lock):
            return _take_backups(spec, state_dir, paths, prune, on_volume)


def _take_backups(spec: EnvironmentSpec, state_dir: Path, paths: EnvironmentPaths, prune: bool,
                  on_volume: Callable[[VolumeBackup], None]) -> BackupRun:
    from drbootstrap.executor.build import client_signing, connect_fleet, provider_for
    from drbootstrap.executor.secrets import load_or_create_psk, signing_scheme

    provider = provider_for(spec, paths)
    master = provider.nodes().get(spec.master.hostname)
    address = provider.addresses(master).reachable if master is not None else None
    if address is None:
        raise ProviderError(f"{spec.environment}: the master {spec.master.hostname} is not running: no agent to "
                            "ask", hint="bring the environment up with `drbootstrap up FILE` first")
    scheme = signing_scheme(spec, paths)
    signing = client_signing(scheme, spec, paths, load_or_create_psk(spec, state_dir))
    fleet = connect_fleet(spec, paths, address, signing)
    try:
        run = back_up(spec, provider, fleet, prune=prune, on_volume=on_volume)
    finally:
        fleet.close()
    sites = copy_sites(spec, paths)
    copy_to_sites(spec, provider, run, sites)
    if prune:
        prune_at_sites(spec, state_dir, run, sites, time.time())
    return run


def read_catalog(spec: EnvironmentSpec, state_dir: Path, environment: str | None = None,
                 paths: EnvironmentPaths | None = None) -> list[BackupRecord]:
    """`drbootstrap backups`: every backup of ENVIRONMENT (default the spec's) at the spec's provider
    (`paths`: at another site, `spec` then having that site's provider)."""
    from drbootstrap.executor.build import provider_for

    provider = provider_for(spec, paths or EnvironmentPaths(state_dir, spec.environment))
    dumps = list_dumps(spec.buckets, environment or spec.environment) if spec.buckets is not None else []
    if not marked(spec) and spec.buckets is not None:
        return dumps  # dumps only: the provider need not have snapshots
    return provider.list_backups(environment or spec.environment) + dumps
