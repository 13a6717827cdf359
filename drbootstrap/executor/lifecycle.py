"""`up`, `status` and `down` as library calls: what the CLI commands run.

`up` and `down` hold the environment (drbootstrap.state: its lock, or its lease on remote state) for
their whole run; `status` does not.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drbootstrap.backups.master_state import choose_master_state
from drbootstrap.errors import DrbError
from drbootstrap.executor.build import (
    build_context,
    client_signing,
    connect_fleet,
    provider_for,
)
from drbootstrap.executor.context import UpOptions
from drbootstrap.executor.events import DONE, Event
from drbootstrap.executor.run import RunResult, incomplete_hostnames, run_up  # noqa: F401 - re-exported
from drbootstrap.executor.secrets import load_or_create_psk, signing_scheme
from drbootstrap.executor.volume_restore import choose_for_run
from drbootstrap.journal import Journal, StepState
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import Plan, build_plan, is_complete
from drbootstrap.report import ReportPaths, build_report, write_report
from drbootstrap.spec.models import EnvironmentSpec
from drbootstrap.state import StateSession, hold_state, read_state

FAILED_WORD = "FAILED"


def resolve_only(plan: Plan, only: tuple[str, ...]) -> tuple[frozenset[str], bool]:
    """--only values (comma-separated hostnames, or FAILED): (the hostnames, whether FAILED was asked).

    FAILED is resolved by the run itself, under the environment's lock, from the journal it reads.
    """
    names: set[str] = set()
    failed = False
    known = {n.hostname for n in plan.nodes()}
    for value in only:
        for item in value.split(","):
            item = item.strip()
            if item.upper() == FAILED_WORD:
                failed = True
            elif item:
                if item not in known:
                    raise DrbError(f"--only {item}: no node of that name in the spec",
                                   hint=f"pick from: {', '.join(sorted(known))}, or FAILED")
                names.add(item)
    return frozenset(names), failed


def up(spec: EnvironmentSpec, state_dir: Path, *, options: UpOptions | None = None,
       emit: Callable[[Event], None] = lambda e: None, plan: Plan | None = None,
       paths: EnvironmentPaths | None = None, state: str | None = None,
       take_over: bool = False, within: StateSession | None = None) -> tuple[RunResult, ReportPaths]:
    """Run `up` holding the environment (drbootstrap.state: a lock, or a lease on remote state;
    STATE is --state, TAKE_OVER --take-over) and write the report beside the journal. `paths`: the
    environment's files at another site (failover gives them with that site's provider in `spec`,
    and WITHIN: its own hold on the environment, under which this `up` runs)."""
    plan = plan or build_plan(spec)
    paths = paths or EnvironmentPaths(state_dir, spec.environment)
    with hold_state(spec, paths, "up", override=state, take_over=take_over, within=within) as session:
        if session.taken_over is not None:
            emit(Event(node="", step="lock", state=DONE, detail=session.taken_over))
        ctx = build_context(spec, plan, paths, options=options, emit=emit)
        session.attach(ctx.journal)
        ctx.restores = choose_for_run(ctx)  # a backup asked for that matches nothing: refused before launch
        ctx.master_state = choose_master_state(spec, source=ctx.options.backup_environment, as_of=ctx.options.as_of)
        result = run_up(ctx)
        report = build_report(ctx.journal, result.outcomes, run_started=result.started_at,
                              run_finished=result.finished_at, plan=plan, rto_seconds=spec.drill.rto_minutes * 60)
        written = write_report(report, ctx.journal)
        session.save_report([p for p in (written.json, written.markdown, written.html) if p is not None],
                            result.started_at)
        return result, written


# ---- status -----------------------------------------------------------------------------------


@dataclass
class NodeStatus:
    hostname: str
    role: str
    provider_id: str | None = None
    address: str | None = None
    cloud_state: str = "absent"
    steps_done: int = 0
    steps_total: int = 0
    complete: bool = False  # plan.is_complete: every planned step done
    last_step: str = ""
    agent: str = "unknown"  # answers | silent | unknown (broker unreachable)
    puppet: str = ""  # for a person: "idle, enabled, last run 3 min ago"
    puppet_status: dict[str, Any] = field(default_factory=dict)  # the agent's raw answer, for --json
    standby: bool = False  # a warm spare of its group (spec `standby:`)
    answered_by: str = ""  # dead, and the standby the watcher moved its name to answers for it

    @property
    def dead(self) -> bool:
        """Absent or not running in the cloud, or its agent silent (when the agents were asked):
        what `status` lists as down, `check` calls CRITICAL and `watch` counts."""
        return self.cloud_state != "running" or self.agent == "silent"


def describe_puppet_status(data: dict[str, Any], now: float) -> str:
    """One short phrase for the Puppet agent's `puppet status` answer: state, enabled or why not, last run age."""
    enabled = bool(data.get("enabled"))
    if not enabled:
        reason = str(data.get("disable_message") or data.get("message") or "").strip()
        return f"disabled: {reason}" if reason else "disabled"
    if data.get("applying"):
        state = "applying"
    else:
        raw = str(data.get("status") or "").strip().lower()
        state = {"idling": "idle", "stopped": "stopped", "": "idle"}.get(raw, raw)
    parts = [state, "enabled"]
    lastrun = data.get("lastrun")
    try:
        lastrun_at = float(lastrun)  # type: ignore[arg-type]  # None or junk: refused below
    except (TypeError, ValueError):
        lastrun_at = 0.0
    parts.append(f"last run {_age(now - lastrun_at)}" if lastrun_at > 0 else "never run")
    return ", ".join(parts)


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "just now" if seconds < 5 else f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


@dataclass
class EnvironmentStatus:
    environment: str
    nodes: list[NodeStatus] = field(default_factory=list)
    holder: str = ""  # remote state: who holds the environment's lease and since when
    orphans: list[str] = field(default_factory=list)  # tagged in the cloud, unknown to the spec
    broker: str = ""
    broker_reachable: bool | None = None  # None: not asked (--no-ping, or the master is not running)
    resources: list[str] = field(default_factory=list)  # the provider's shared resources (key pair, group...)

    @property
    def problems(self) -> list[str]:
        """What is down or failed, one line per node: absent or not running in the cloud, a failed
        step, or (when the agents were asked) a silent agent. A node that is only incomplete (`up
        --until`) is not a problem."""
        found = []
        for node in self.nodes:
            if node.cloud_state != "running":
                found.append(f"{node.hostname}: {node.cloud_state} in the cloud")
            elif node.last_step.endswith(f" {StepState.FAILED}"):
                found.append(f"{node.hostname}: {node.last_step}")
            elif node.dead:
                found.append(f"{node.hostname}: its agent is silent")
        return found


def status(spec: EnvironmentSpec, state_dir: Path, *, ping: bool = True,
           paths: EnvironmentPaths | None = None, state: str | None = None) -> EnvironmentStatus:
    """The journal's view, the cloud's view and (with ping) the agents' answers, per node.

    Reads without the environment's lock: it works while an `up` runs.
    """
    paths = paths or EnvironmentPaths(state_dir, spec.environment)
    view = read_state(spec, paths, state)
    journal = view.journal
    plan = build_plan(spec)
    provider = provider_for(spec, paths)
    live = provider.nodes()
    result = EnvironmentStatus(spec.environment, holder=view.holder)
    result.resources = provider.describe_resources()
    serving = _standby_serving(paths)
    for planned in plan.nodes():
        record = journal.data.nodes.get(planned.hostname)
        node = live.get(planned.hostname)
        entry = NodeStatus(planned.hostname, planned.role, steps_total=len(planned.steps),
                           complete=is_complete(record, planned), answered_by=serving.get(planned.hostname, ""),
                           standby=planned.group is not None and planned.hostname in planned.group.standby_hostnames())
        if record is not None:
            entry.provider_id, entry.address = record.provider_id, record.address
            entry.steps_done = sum(1 for s in planned.steps if record.is_done(s))
            if record.steps:
                step, rec = max(record.steps.items(), key=lambda item: item[1].started_at)
                entry.last_step = f"{step} {rec.state}"
        if node is not None:
            entry.cloud_state = str(node.state)
            entry.address = entry.address or provider.addresses(node).private
        result.nodes.append(entry)
    known = {n.hostname for n in plan.nodes()}
    result.orphans = sorted(h for h in live if h not in known)
    master = next(n for n in result.nodes if n.role == "master")
    master_node = live.get(master.hostname)
    reachable = (provider.addresses(master_node).reachable if master_node is not None else None) or master.address
    if ping and reachable and master.cloud_state == "running":
        _ping_agents(spec, paths, reachable, result, {n.hostname: n.fqdn for n in plan.nodes()})
    return result


def _standby_serving(paths: EnvironmentPaths) -> dict[str, str]:
    """Which standby answers for which dead active node, as the watcher last recorded it."""
    from drbootstrap.watch.state import load

    try:
        return dict(load(paths.watch_state).serving)
    except DrbError:
        return {}  # a damaged watcher state: `status` still shows the rest


def _ping_agents(spec: EnvironmentSpec, paths: EnvironmentPaths, address: str, result: EnvironmentStatus,
                 fqdns: dict[str, str]) -> None:
    state_dir = paths.state_dir
    scheme = signing_scheme(spec, paths)  # before the PSK is read or made: an existing PSK means HMAC
    signing = client_signing(scheme, spec, paths, load_or_create_psk(spec, state_dir))
    try:
        fleet = connect_fleet(spec, paths, address, signing, connect_timeout=5.0)
    except DrbError as error:
        result.broker = f"unreachable: {error}"
        result.broker_reachable = False
        return
    result.broker_reachable = True
    try:
        answered = fleet.discover(sorted(fqdns.values()), timeout=3.0)
        result.broker = f"{len(answered)} of {len(fqdns)} agents answer"
        for entry in result.nodes:
            entry.agent = "answers" if fqdns[entry.hostname] in answered else "silent"
            if entry.agent == "answers" and entry.role != "master":
                try:
                    data = fleet.call(fqdns[entry.hostname], "puppet", "status", {}, 10.0)
                    entry.puppet_status = dict(data)
                    entry.puppet = describe_puppet_status(data, time.time())
                except DrbError as error:
                    entry.puppet = f"unknown ({error.message})"
    finally:
        fleet.close()


# ---- down -------------------------------------------------------------------------------------


@dataclass
class DownResult:
    destroyed: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # controller names removed from the site's DNS
    names_kept: list[str] = field(default_factory=list)  # left: another site is active and holds them
    resources: list[str] = field(default_factory=list)  # shared resources removed (key pair, group, addresses...)
    forgotten: list[str] = field(default_factory=list)


def down(spec: EnvironmentSpec, state_dir: Path, *, paths: EnvironmentPaths | None = None,
         state: str | None = None, take_over: bool = False) -> DownResult:
    """Destroy every node the journal or the cloud's tags say this environment owns; idempotent.

    Holds the environment (lock or lease). The journal keeps each node's generation, so a later `up`
    launches with fresh client tokens. `paths`: the environment at another site (failover). The
    master's `dynamic_dns` name is removed only at the active site: elsewhere it is the active one's.
    """
    paths = paths or EnvironmentPaths(state_dir, spec.environment)
    with hold_state(spec, paths, "down", override=state, take_over=take_over) as session:
        return _down(spec, paths, session)


def active_site(paths: EnvironmentPaths) -> str:
    """The site the environment is active at, as the failover journal records it (the primary until
    a failover moves it)."""
    from drbootstrap.failover.switch_journal import load_state

    return load_state(paths.failover_journal).active_site


def _down(spec: EnvironmentSpec, paths: EnvironmentPaths, session: StateSession) -> DownResult:
    journal = Journal.at(paths)
    session.attach(journal)
    owned_ids = frozenset(r.provider_id for r in journal.data.nodes.values() if r.provider_id)
    teardown = provider_for(spec, paths).destroy_environment(owned_ids)
    result = DownResult(destroyed=teardown.destroyed, volumes=teardown.volumes, resources=teardown.resources)
    if spec.master.dynamic_dns is not None:
        from drbootstrap.dns import rfc2136

        target = rfc2136.target_from_spec(spec.master.dynamic_dns, spec.master.hostname)
        active = active_site(paths)
        if paths.site == active:
            rfc2136.remove_name(target.server, target.zone, target.name, target.key)
            result.names.append(f"{target.name}.{target.zone}")
        else:  # the controller name is the active site's master's: another site's `down` leaves it
            result.names_kept.append(f"{target.name}.{target.zone} (site {active} is active)")
    for hostname in sorted(journal.data.nodes):
        if journal.data.nodes[hostname].provider_id or journal.data.nodes[hostname].steps:
            journal.forget_node(hostname)
            result.forgotten.append(hostname)
    journal.record_resolved({}, replace=True)  # a later `up` resolves its images afresh
    journal.flush()
    # The names the master's DNS held, its hosts file and every node's own files go with the nodes.
    shutil.rmtree(paths.nodes, ignore_errors=True)
    result.destroyed.sort()
    return result
