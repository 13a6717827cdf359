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
from drbootstrap.plan import Plan, build_plan, is_complete
from drbootstrap.spec.models import EnvironmentSpec
from drbootstrap.spec.operations import DnsRecordSpec

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
    lines.extend(_restores_at(spec, state_dir, target, plan))
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


def _restores_at(spec: EnvironmentSpec, state_dir: Path, target: Site, plan: Plan) -> list[str]:
    """Per volume marked `backup:`, the backup `up` at the target would restore: the newest good one
    the target's provider lists for the environment (copies made there by `backup`)."""
    import time

    from drbootstrap.backups.choose import RestoreRequest, choose_restores, format_age, format_time
    from drbootstrap.executor.volume_restore import marked_volumes

    marked = marked_volumes(plan)
    if not marked:
        return []
    try:
        catalog = provider_at(spec, state_dir, target).list_backups(spec.environment)
        restores = choose_restores(catalog, marked, RestoreRequest(spec.environment))
    except DrbError as error:
        return [f"site {target.name}: its backups cannot be listed now ({error.message})"]
    now, lines = time.time(), []
    for (hostname, volume), restore in restores.items():
        chosen = restore.chosen
        lines.append(f"site {target.name}: {hostname}/{volume} would be restored from {chosen.id} (taken "
                     f"{format_time(chosen.created_at)}, {format_age(now - chosen.created_at)} old)"
                     if chosen is not None else
                     f"site {target.name}: {hostname}/{volume} has no backup there: it would start empty")
    return lines
