"""`failover --dry-run`: what a switch would change at each site and in DNS, read without changing anything."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from drbootstrap.errors import DrbError
from drbootstrap.failover import public_dns
from drbootstrap.failover.public_dns import PublicDns
from drbootstrap.failover.sites import Site, paths_at, provider_at, site_named
from drbootstrap.failover.switch_journal import FailoverState
from drbootstrap.journal import Journal
from drbootstrap.plan import build_plan, is_complete
from drbootstrap.spec.models import DnsRecordSpec, EnvironmentSpec

if TYPE_CHECKING:
    from drbootstrap.failover.run import SwitchResult


def describe_switch(spec: EnvironmentSpec, state_dir: Path, target: Site, public: PublicDns,
                    targets: list[tuple[DnsRecordSpec, str]], state: FailoverState) -> SwitchResult:
    """The lines a switch to `target` would act on: the target's nodes, each record, the old site."""
    from drbootstrap.failover.run import DOWN_STATES, SwitchResult

    result = SwitchResult(spec.environment, target.name)
    lines = result.planned
    current = state.current
    if current is None and state.active_site == target.name:
        result.already_active = True
        lines.append(f"{spec.environment} is already active at {target.name}: nothing would change")
        return result
    from_site = current.from_site if current is not None else state.active_site
    if current is not None:
        lines.append(f"resumes the unfinished {current.command} to {current.to_site} "
                     f"(done: {', '.join(current.phases) or 'nothing'})")
    plan = build_plan(spec)
    journal = Journal.at(paths_at(spec, state_dir, target))
    to_do = [n.hostname for n in plan.nodes() if not is_complete(journal.data.nodes.get(n.hostname), n)]
    lines.append(f"site {target.name}: `up` would work on {len(to_do)} of {len(plan.nodes())} node(s)"
                 + (f" ({', '.join(to_do)})" if to_do else " (all complete)") + ", then run every check again")
    for (record, value), now in zip(targets, public_dns.read_records(public), strict=True):
        wanted = public_dns.wanted_value(record, value)
        change = "unchanged" if now.values == (wanted,) else f"-> {wanted}"
        lines.append(f"dns: {now.describe()} {change} (TTL written {public.ttl} s)")
    old = site_named(spec, from_site)
    policy = spec.failover.fence
    try:
        live = provider_at(spec, state_dir, old).nodes()
        running = sorted(h for h, n in live.items() if n.state not in DOWN_STATES)
        what = {"stop": "stopped", "destroy": "destroyed", "none": "left running"}[policy]
        lines.append(f"site {old.name}: {len(running)} running node(s) would be {what} (failover.fence: {policy})"
                     + (f": {', '.join(running)}" if running else ""))
    except DrbError as error:
        lines.append(f"site {old.name}: cannot be reached now ({error.message}); it would be reported unfenced")
    return result
