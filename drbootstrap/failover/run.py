"""The failover runner: bring the environment up at the target site (the `up` runner on that site's
provider), verify it, and only then switch the public records and fence the old site. The only
writer of the failover journal (switch_journal.py); each phase is saved as it finishes, so a run
killed at any point resumes there, never sends a DNS update twice and never switches back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from libcloud.compute.types import NodeState

from drbootstrap.errors import DrbError, NotSwitched
from drbootstrap.executor.context import UpOptions
from drbootstrap.executor.events import DONE, FAILED, RUNNING, SKIPPED, Event
from drbootstrap.exit_status import ExitStatus
from drbootstrap.failover import public_dns
from drbootstrap.failover.public_dns import PublicDns
from drbootstrap.failover.sites import Site, paths_at, provider_at, site_named, spec_at
from drbootstrap.failover.switch_journal import FenceOutcome, Switch, load_state, save_state
from drbootstrap.journal import Journal
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import Step
from drbootstrap.spec.models import EnvironmentSpec
from drbootstrap.state import StateSession, hold_state

Emit = Callable[[Event], None]
DOWN_STATES = (NodeState.STOPPED, NodeState.TERMINATED)


class SwitchUnfinished(DrbError):
    """Another switch of this environment is unfinished: finishing it comes first."""

    exit_status = ExitStatus.BUSY


@dataclass
class SwitchResult:
    """How the run ended: the switch (with its phases), or that the target was already active."""

    environment: str
    to_site: str
    switch: Switch | None = None
    already_active: bool = False
    report_json: Path | None = None
    report_markdown: Path | None = None
    planned: list[str] = field(default_factory=list)  # --dry-run: what would change, one line each


def run_switch(spec: EnvironmentSpec, state_dir: Path, to_site: str, *, command: str = "failover",
               dry_run: bool = False, emit: Emit = lambda e: None,
               up_options: UpOptions | None = None) -> SwitchResult:
    """Fail the environment over (or back) to `to_site`; see the module's docstring."""
    target = site_named(spec, to_site)
    public = public_dns.public_dns_from_spec(spec)
    targets = public_dns.targets_at(public, target.name)
    public_dns.check_key(public)  # a key the server refuses stops us here, before anything changes
    paths = EnvironmentPaths(state_dir, spec.environment)
    if dry_run:
        from drbootstrap.failover.dry_run import describe_switch

        return describe_switch(spec, state_dir, target, public, targets, load_state(paths.failover_journal))
    # Held as `up` and `down` hold it (drbootstrap.state): failover's own lock file, or the lease of
    # an environment whose state is in s3; the `up` and fencing it runs work under that hold.
    with hold_state(spec, paths, command, lock=paths.failover_lock) as session:
        return _switch(spec, state_dir, target, public, targets, command, emit, up_options, session)


def _switch(spec: EnvironmentSpec, state_dir: Path, target: Site, public: PublicDns,
            targets: list[tuple[public_dns.DnsRecordSpec, str]], command: str, emit: Emit,
            up_options: UpOptions | None, session: StateSession) -> SwitchResult:
    paths = EnvironmentPaths(state_dir, spec.environment)
    state = load_state(paths.failover_journal)
    result = SwitchResult(spec.environment, target.name)
    current = state.current
    if current is not None and current.to_site != target.name and not current.done("dns_switched") \
            and target.name == state.active_site:
        # Its DNS never moved: staying where the records point is safe (a target site lost for good).
        current.finished_at, current.verification = time.time(), f"abandoned ({current.verification or 'unverified'})"
        state.history.append(current)
        state.current = current = None
        save_state(paths.failover_journal, state)
        _say(emit, DONE, f"the unfinished {command} attempt was abandoned: its DNS had not moved")
    if current is not None and current.to_site != target.name:
        raise SwitchUnfinished(
            f"{spec.environment}: the {current.command} to {current.to_site} is unfinished "
            f"(done: {', '.join(current.phases) or 'nothing'}); {command} to {target.name} refused",
            hint=f"finish it first: drbootstrap {current.command} FILE --to {current.to_site}")
    if current is None and state.active_site == target.name:
        _say(emit, SKIPPED, f"{spec.environment} is already active at {target.name}: nothing to switch")
        result.already_active = True
        return result
    if current is None:
        current = Switch(command, state.active_site, target.name, started_at=time.time())
        state.current = current
        save_state(paths.failover_journal, state)
    result.switch = current

    def phase_done(phase: str, detail: str) -> None:
        current.phases[phase] = time.time()
        save_state(paths.failover_journal, state)
        _say(emit, DONE, detail, phase)

    if not current.done("verified"):
        _bring_up_and_verify(spec, state_dir, target, current, emit, up_options, phase_done,
                             lambda: save_state(paths.failover_journal, state), session)
    if not current.done("dns_switched"):
        _switch_records(public, targets, current, emit, lambda: save_state(paths.failover_journal, state))
        phase_done("dns_switched", "; ".join(r.describe() for r in current.records_after))
    else:
        _say(emit, SKIPPED, "public records already switched (journal): not sent again", "dns_switched")
    if not current.done("fenced"):
        old = site_named(spec, current.from_site)
        current.fence = fence_site(spec, state_dir, old, spec.failover.fence, emit, within=session)
        phase_done("fenced", f"{old.name}: {current.fence.state}: {current.fence.detail}")
    current.finished_at = time.time()
    state.active_site, state.current = target.name, None
    state.history.append(current)
    save_state(paths.failover_journal, state)
    from drbootstrap.failover.report import write_switch_report

    result.report_json, result.report_markdown = write_switch_report(paths, spec.environment, current)
    return result


def _bring_up_and_verify(spec: EnvironmentSpec, state_dir: Path, target: Site, current: Switch, emit: Emit,
                         up_options: UpOptions | None, phase_done: Callable[[str, str], None],
                         save: Callable[[], None], session: StateSession) -> None:
    """`up` at the target (its checks run again even where done), target_up and verified journaled;
    NotSwitched when any node failed. SESSION: the failover's hold on the environment."""
    from drbootstrap.executor.lifecycle import up

    _say(emit, RUNNING, f"bringing {spec.environment} up at site {target.name}", "target_up")
    _rebuild_if_fenced(spec, state_dir, target, emit, session)
    options = up_options or UpOptions()
    options.redo = frozenset(options.redo | {Step.CHECKS})
    # Data: `up` restores each volume marked `backup:` from the newest good backup the target's
    # provider lists for the environment (tagged with its own name, whichever site took it: on the
    # local cloud one snapshot store both sites see; elsewhere copies made there by `backup`).
    run, _report = up(spec_at(spec, target), state_dir, options=options, emit=emit,
                      paths=paths_at(spec, state_dir, target), within=session)
    failed = run.failed
    if not current.done("target_up") and all(o.step == str(Step.CHECKS) for o in failed):
        phase_done("target_up", f"{len(run.outcomes)} node(s) up at {target.name}")
    if failed:
        why = "; ".join(f"{o.hostname} {o.state} at {o.step or '-'}: {o.reason}" for o in failed)
        current.verification = f"failed: {why}"
        save()
        _say(emit, FAILED, f"site {target.name} failed verification: public DNS not switched", "verified")
        raise NotSwitched(f"{current.command} to {target.name}: {len(failed)} node(s) failed verification "
                          f"({why}); public DNS not switched, records untouched",
                          hint=f"fix the site and run `drbootstrap {current.command} FILE --to {target.name}` "
                               "again: it resumes")
    current.verification = f"{len(run.outcomes)} node(s) up, checks passed"
    phase_done("verified", f"site {target.name}: {current.verification}")


def _rebuild_if_fenced(spec: EnvironmentSpec, state_dir: Path, site: Site, emit: Emit,
                       session: StateSession) -> None:
    """A site fenced by an earlier failover (its nodes stopped) is rebuilt rather than restarted: its
    data is older than the backups taken since, and a clean `up` restores from those."""
    provider = provider_at(spec, state_dir, site)
    stopped = sorted(h for h, n in provider.nodes().items() if n.state in DOWN_STATES)
    if stopped:
        _say(emit, RUNNING, f"site {site.name} was fenced ({', '.join(stopped)} stopped): rebuilding it", "target_up")
        destroy_site(spec, state_dir, site, within=session)


def destroy_site(spec: EnvironmentSpec, state_dir: Path, site: Site, *, within: StateSession) -> list[str]:
    """Every node and volume of the environment at `site` destroyed and forgotten in its journal
    (its controller name in DNS is left: the active site holds it now). The hostnames destroyed.
    WITHIN: the failover's hold on the environment (the site's own lock is taken too)."""
    paths = paths_at(spec, state_dir, site)
    with hold_state(spec_at(spec, site), paths, "failover", within=within) as session:
        journal = Journal.at(paths)
        session.attach(journal)
        owned = frozenset(r.provider_id for r in journal.data.nodes.values() if r.provider_id)
        teardown = provider_at(spec, state_dir, site).destroy_environment(owned)
        for hostname in sorted(journal.data.nodes):
            journal.forget_node(hostname)
        journal.flush()
    return teardown.destroyed


def _switch_records(public: PublicDns, targets: list[tuple[public_dns.DnsRecordSpec, str]], current: Switch,
                    emit: Emit, save: Callable[[], None]) -> None:
    """Read the records (once: their values and TTL before any change are kept), send an update for
    each that does not already hold its target, read them back."""
    before = public_dns.read_records(public)
    if not current.records_before:
        current.records_before = before
    if current.switch_time is None:
        current.switch_time = time.time()  # saved before the first update: a resumed run keeps it
    save()
    for (record, target), now in zip(targets, before, strict=True):
        wanted = public_dns.wanted_value(record, target)
        if now.values == (wanted,):
            continue
        _say(emit, RUNNING, f"{now.name} {record.type}: {', '.join(now.values) or '(none)'} -> {wanted}",
             "dns_switched")
        public_dns.switch_record(public, record, target)
        current.dns_updates += 1
        save()
    after = public_dns.read_records(public)
    for (record, target), now in zip(targets, after, strict=True):
        if now.values != (public_dns.wanted_value(record, target),):
            raise public_dns.DynamicDnsError(f"{now.name} {record.type} reads {', '.join(now.values) or '(none)'} "
                                             f"after the update, expected {target}",
                                             hint="another writer may own the record; run the failover again")
    current.records_after = after


def fence_site(spec: EnvironmentSpec, state_dir: Path, site: Site, policy: str, emit: Emit, *,
               within: StateSession) -> FenceOutcome:
    """Apply `failover.fence` to the old site: stop (or destroy) its nodes so two sites never serve
    at once. A site that cannot be reached is reported, not waited for."""
    if policy == "none":
        return FenceOutcome("none", policy, "left running (failover.fence: none)")
    _say(emit, RUNNING, f"fencing site {site.name} ({policy})", "fenced")
    try:
        if policy == "destroy":
            destroyed = destroy_site(spec, state_dir, site, within=within)
            return FenceOutcome("fenced", policy, f"destroyed {', '.join(destroyed) or 'nothing (none left)'}")
        provider = provider_at(spec, state_dir, site)
        stopped = []
        for hostname, node in sorted(provider.nodes().items()):
            if node.state not in DOWN_STATES:
                provider.stop_node(node)
                stopped.append(hostname)
        return FenceOutcome("fenced", policy, f"stopped {', '.join(stopped) or 'nothing (all already stopped)'}")
    except (DrbError, OSError) as error:
        reason = error.message if isinstance(error, DrbError) else str(error)
        _say(emit, FAILED, f"site {site.name} could not be fenced: {reason}", "fenced")
        return FenceOutcome("unreachable", policy, f"could not be fenced: {reason}")


def _say(emit: Emit, state: str, detail: str, step: str = "failover") -> None:
    emit(Event(node="", step=step, state=state, detail=detail, at=time.time()))
