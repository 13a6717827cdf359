"""Tearing a drill down, and reaping the drills nobody will tear down: expired, or whose process died.

Every teardown is verified by what the provider lists before and after: what the drill's environment
holds in the cloud (nodes, volumes, shared resources) must be gone afterwards. Drills are found two
ways: by their leases in the state directory, and by their nodes' tags in the cloud (for a drill
whose state directory is gone, once its tagged expiry has passed).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from drbootstrap.drill.identity import DRILL_TAG, EXPIRES_TAG, DrillIdentity, drill_spec
from drbootstrap.drill.lease import DrillLease, all_leases
from drbootstrap.errors import DrbError
from drbootstrap.executor.build import provider_for
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.providers.base import Provider
from drbootstrap.providers.nodes import HOSTNAME_TAG, node_tags
from drbootstrap.providers.volumes import environment_volume_prefix
from drbootstrap.spec.models import EnvironmentSpec


@dataclass
class DrillTeardown:
    """One drill's teardown: what the provider listed for it before and after."""

    environment: str
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # beyond the listing: bridge, state directory
    reason: str = ""  # why it was reaped (empty for a drill's own teardown)

    @property
    def clean(self) -> bool:
        return not self.after

    def to_dict(self) -> dict[str, object]:
        return {"environment": self.environment, "before": self.before, "after": self.after,
                "removed": self.removed, "reason": self.reason, "clean": self.clean}


@dataclass
class ReapResult:
    reaped: list[DrillTeardown] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # drills in use or not yet expired, one line each
    problems: list[str] = field(default_factory=list)


def listed_resources(provider: Provider) -> list[str]:
    """What the provider lists as the environment's: nodes by tag, volumes by name, shared resources."""
    lines = [f"node {hostname} ({node.id})" for hostname, node in sorted(provider.nodes().items())]
    driver = provider.driver()
    if callable(getattr(driver, "list_volumes", None)):
        prefix = environment_volume_prefix(provider.environment)
        lines += sorted(f"volume {v.name}" for v in provider.call("list volumes", driver.list_volumes)
                        if (v.name or "").startswith(prefix))
    return lines + provider.describe_resources()


def tear_down_drill(spec: EnvironmentSpec, state_dir: Path, *, reason: str = "") -> DrillTeardown:
    """Destroy everything the drill environment of SPEC (a drill_spec) owns, check the provider's
    listing is empty afterwards, and remove its state directory (the lease last)."""
    from drbootstrap.executor.lifecycle import down

    paths = EnvironmentPaths(state_dir, spec.environment)
    provider = provider_for(spec, paths)
    result = DrillTeardown(spec.environment, before=listed_resources(provider), reason=reason)
    done = down(spec, state_dir)
    result.removed += done.resources
    result.after = listed_resources(provider_for(spec, paths))
    if result.clean and paths.root.exists():
        for child in sorted(paths.root.iterdir()):
            if child != paths.drill_lease:
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        paths.drill_lease.unlink(missing_ok=True)
        paths.root.rmdir()
        result.removed.append(f"state {paths.root}")
    return result


def reap_drills(spec: EnvironmentSpec, state_dir: Path, *, now: float | None = None) -> ReapResult:
    """Reap SPEC's drills that expired or whose process is gone; then nodes tagged as a drill's that
    no lease here accounts for and whose tagged expiry has passed."""
    now = time.time() if now is None else now
    result = ReapResult()
    live_ids: set[str] = set()
    for lease in all_leases(state_dir):
        if lease.production_environment != spec.environment:
            continue
        why = lease.reapable(now)
        if why is None:
            live_ids.add(lease.drill_id)
            result.kept.append(f"{lease.environment}: {lease.state}, expires "
                               f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(lease.expires_at))} UTC")
            continue
        try:
            result.reaped.append(tear_down_drill(_spec_of(spec, lease), state_dir, reason=why))
        except DrbError as error:
            live_ids.add(lease.drill_id)  # its nodes are left to the next reap, not swept by tag
            result.problems.append(f"{lease.environment}: {error}")
    result.reaped += _sweep_tagged(spec, state_dir, live_ids, now, result)
    return result


def _spec_of(spec: EnvironmentSpec, lease: DrillLease) -> EnvironmentSpec:
    identity = DrillIdentity(lease.drill_id, lease.environment, lease.production_environment, lease.started_at,
                             lease.expires_at)
    return drill_spec(spec, identity, lease.provider_changes)


def _sweep_tagged(spec: EnvironmentSpec, state_dir: Path, live_ids: set[str], now: float,
                  result: ReapResult) -> list[DrillTeardown]:
    """Nodes carrying a drill's tag, with no live lease here and past their tagged expiry."""
    provider = provider_for(spec, EnvironmentPaths(state_dir, spec.environment))
    driver = provider.driver()
    swept: dict[str, DrillTeardown] = {}
    for node in provider.call("list nodes", driver.list_nodes):
        tags = node_tags(node)
        drill_id = tags.get(DRILL_TAG)
        if not drill_id or drill_id in live_ids:
            continue
        try:
            expired = float(tags.get(EXPIRES_TAG, "0")) <= now
        except ValueError:
            expired = True
        if not expired:
            continue
        environment = tags.get("drbootstrap:environment", "?")
        entry = swept.setdefault(environment, DrillTeardown(environment, reason="tagged expiry passed, no lease"))
        line = f"node {tags.get(HOSTNAME_TAG, node.name)} ({node.id})"
        entry.before.append(line)
        try:
            provider.destroy_node(node)
        except DrbError as error:
            entry.after.append(line)
            result.problems.append(f"{line}: {error}")
    return list(swept.values())
