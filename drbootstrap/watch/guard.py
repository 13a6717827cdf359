"""The meltdown guard: a mass failure is rarely cured by rebuilding everything, so resurrection
pauses when at least `nodes` nodes AND at least `percent` % of the environment went unhealthy
within the window (spec `watch.meltdown`; defaults 5 nodes, 20 %, 10 minutes)."""

from __future__ import annotations

from dataclasses import dataclass

from drbootstrap.spec.operations import MeltdownSpec


@dataclass(frozen=True)
class Verdict:
    meltdown: bool
    unhealthy: list[str]
    reason: str = ""


def assess(rule: MeltdownSpec, unhealthy_since: dict[str, float], total_nodes: int, now: float) -> Verdict:
    """Which nodes went unhealthy within the window, and whether that is a meltdown."""
    window = rule.window_minutes * 60
    recent = sorted(h for h, since in unhealthy_since.items() if now - since <= window)
    share = 100.0 * len(recent) / total_nodes if total_nodes else 0.0
    if len(recent) >= rule.nodes and share >= rule.percent:
        reason = (f"{len(recent)} of {total_nodes} nodes ({share:.0f} %) unhealthy within "
                  f"{rule.window_minutes:g} min ({', '.join(recent)}), at least {rule.nodes} and "
                  f"{rule.percent:g} % pause resurrection")
        return Verdict(True, recent, reason)
    return Verdict(False, recent)
