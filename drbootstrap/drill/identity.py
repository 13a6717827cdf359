"""Who a drill is: its id, its environment name, the production environment it rehearses, and the
spec it runs (production's, renamed and isolated). The one place a drill's run is derived."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from drbootstrap.spec.models import EnvironmentSpec

DRILL_TAG = "drbootstrap:drill"  # on every node a drill launches: the drill's id
EXPIRES_TAG = "drbootstrap:drill-expires"  # epoch seconds after which anyone may reap it
MAX_NAME = 63  # an environment name is an RFC 1123 label


@dataclass(frozen=True)
class DrillIdentity:
    drill_id: str
    environment: str  # the drill's own environment name (its journal, tags, volumes)
    production_environment: str  # the environment it rehearses: whose backups it restores
    started_at: float
    expires_at: float  # while it runs; a kept drill's lease is extended to its expire_hours

    @property
    def node_tags(self) -> dict[str, str]:
        """Tags every node of the drill carries besides its environment's: reapable by the cloud's listing alone."""
        return {DRILL_TAG: self.drill_id, EXPIRES_TAG: str(int(self.expires_at))}


def new_identity(spec: EnvironmentSpec, *, now: float | None = None, drill_id: str | None = None) -> DrillIdentity:
    """A fresh drill of SPEC: name_prefix + environment + a short id. It expires after three times
    its RTO target plus an hour, however it ends (a running drill past that is stuck)."""
    now = time.time() if now is None else now
    drill_id = drill_id or secrets.token_hex(3)
    base = f"{spec.drill.name_prefix}{spec.environment}"[: MAX_NAME - len(drill_id) - 1].strip("-")
    return DrillIdentity(drill_id, f"{base}-{drill_id}", spec.environment, now,
                         now + 3 * spec.drill.rto_minutes * 60 + 3600)


def drill_spec(spec: EnvironmentSpec, identity: DrillIdentity, provider_changes: dict[str, str]) -> EnvironmentSpec:
    """Production's spec as the drill runs it: its own environment name, the provider block changed
    as the provider isolates a drill (the local cloud: its own subnet), and nothing that reaches
    production's public face (no dynamic DNS registration of the controller, no failover records)."""
    provider = spec.provider.model_copy(update=provider_changes)
    master = spec.master.model_copy(update={"dynamic_dns": None})
    derived = spec.model_copy(update={"environment": identity.environment, "provider": provider,
                                      "master": master, "public_dns": None, "sites": []})
    derived._source_path = spec.source_path
    return derived
