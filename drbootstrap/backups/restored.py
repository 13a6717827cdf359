"""What the volumes step restored into each volume, as journal facts ("backup:<volume>:<field>"):
written by the step (executor.volume_restore), read back by the report (the RPO achieved)."""

from __future__ import annotations

from dataclasses import dataclass

from drbootstrap.journal import Fact

FACT_PREFIX = "backup:"  # facts "backup:<volume>:<field>"


@dataclass(frozen=True)
class VolumeRestoreFacts:
    """What the volumes step restored into one volume (the report's RPO line)."""

    volume: str
    backup_id: str = ""  # empty: no backup yet, the volume started empty (or from the spec's snapshot)
    created_at: int = 0
    restored_at: int = 0
    verified: str = ""  # "ok" | "failed" | "unverifiable" | "" (nothing restored)
    failed: str = ""  # the backups that failed verification before it, comma-separated

    @property
    def rpo_seconds(self) -> int | None:
        return self.restored_at - self.created_at if self.backup_id else None

    def facts(self) -> dict[str, Fact]:
        prefix = f"{FACT_PREFIX}{self.volume}:"
        return {prefix + "backup_id": self.backup_id, prefix + "created_at": self.created_at,
                prefix + "restored_at": self.restored_at, prefix + "verified": self.verified,
                prefix + "failed": self.failed}


def restore_facts(facts: dict[str, Fact]) -> list[VolumeRestoreFacts]:
    """The volumes step's facts read back (the report reads them from the journal)."""
    volumes = sorted({key.split(":")[1] for key in facts if key.startswith(FACT_PREFIX) and key.count(":") == 2})
    found = []
    for volume in volumes:
        def value(name: str, volume: str = volume) -> Fact:
            return facts.get(f"{FACT_PREFIX}{volume}:{name}", "")
        found.append(VolumeRestoreFacts(volume, str(value("backup_id")), int(value("created_at") or 0),
                                        int(value("restored_at") or 0), str(value("verified")), str(value("failed"))))
    return found


