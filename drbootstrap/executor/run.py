"""The run: the master's pipeline and every worker's, side by side, waiting only where they must.

Pipelined (plan.WORKERS_START_AFTER, plan.READINESS_GATE): a worker starts once the master's DNS,
broker and agent answer, and waits before its Puppet steps for the master's Puppet CA and for the
nodes it depends on (`after:`) to be complete; launching, naming and booting overlap the Puppet
server's start. The waits are executor.readiness's.

The runner is the one writer of node state: it starts and finishes every step in the journal,
records what the steps return, and decides when a node is launched anew (a step raises
StartOver; the runner forgets the node and starts it over, a bounded number of times). A node
that fails stops only itself; the nodes that wait on it are blocked with a clear reason.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

from drbootstrap.errors import DrbError
from drbootstrap.executor import events
from drbootstrap.executor.cloud_request import record_preflight
from drbootstrap.executor.context import NodeRuntime, RunContext
from drbootstrap.executor.events import Event
from drbootstrap.executor.launch_steps import boot_failed_unrecorded, destroy_node, reacquire
from drbootstrap.executor.outcomes import NodeLost, StartOver, StepFailed
from drbootstrap.executor.progress import Progress
from drbootstrap.executor.readiness import Readiness
from drbootstrap.executor.steps import STEP_FUNCTIONS, recheck_done
from drbootstrap.exit_status import ExitStatus
from drbootstrap.journal import Journal, StepState
from drbootstrap.plan import GATED_STEPS, WORKERS_START_AFTER, Plan, PlannedNode, Step, dependencies, is_complete

# A node the cloud loses again and again within one run fails instead of being launched forever.
MAX_RELAUNCHES = 2


@dataclass
class NodeOutcome:
    """How one node ended this run: done, failed (at which step, why, the log tail) or blocked."""

    hostname: str
    role: str
    state: str  # events.DONE | events.FAILED | events.BLOCKED | events.SKIPPED (not in --only)
    step: str = ""
    reason: str = ""
    log_tail: str = ""
    complete: bool = False  # plan.is_complete for the node's journal record when the run left it
    exit_status: ExitStatus = ExitStatus.PARTIAL  # a failure's own status (BACKUP: no backup verified)

    @property
    def ok(self) -> bool:
        """Did the run do what was asked of this node (complete, or stopped where --until said)?"""
        return self.state not in (events.FAILED, events.BLOCKED)


@dataclass
class RunResult:
    environment: str
    started_at: float
    finished_at: float = 0.0
    outcomes: dict[str, NodeOutcome] = field(default_factory=dict)
    until: str = ""  # the --until step this run stopped at, if any

    @property
    def failed(self) -> list[NodeOutcome]:
        return [o for o in self.outcomes.values() if not o.ok]

    @property
    def exit_status(self) -> ExitStatus:
        """OK; BACKUP when every node that failed (not those blocked behind one) failed for want of a
        backup that verifies; else PARTIAL."""
        if not self.failed:
            return ExitStatus.OK
        statuses = {o.exit_status for o in self.failed if o.state == events.FAILED}
        return ExitStatus.BACKUP if statuses == {ExitStatus.BACKUP} else ExitStatus.PARTIAL


class _Emitter:
    """Adds the run's elapsed time, the done/total step counter and the node's role and address to every
    event; sends the heartbeats of long steps (executor/progress.py)."""

    def __init__(self, ctx: RunContext, started: float, total_steps: int = 0) -> None:
        self.ctx, self.started = ctx, started
        self._lock = threading.Lock()
        self.progress = Progress(total_steps, ctx.options.heartbeat_seconds)

    def __call__(self, node: NodeRuntime | PlannedNode, step: str, state: str, detail: str = "") -> None:
        planned = node.planned if isinstance(node, NodeRuntime) else node
        address = node.address if isinstance(node, NodeRuntime) else ""
        event = Event(node=planned.hostname, step=step, state=state, detail=detail,
                      role=planned.role, address=address or "")
        with self._lock:  # renderers need not be thread-safe
            now = self.ctx.clock.monotonic()
            self.progress.note(event, now)
            self._send(event, now)

    def heartbeat(self) -> None:
        """A heartbeat event for every node that has been in one step longer than the interval."""
        with self._lock:
            now = self.ctx.clock.monotonic()
            for event in self.progress.due(now):
                self._send(event, now)

    def _send(self, event: Event, now: float) -> None:
        self.ctx.emit(replace(event, elapsed=round(now - self.started, 3), at=self.ctx.clock.time(),
                              steps_done=self.progress.done, steps_total=self.progress.total))


@dataclass
class NodeWaits:
    """What one worker's pipeline waits for: the master before it starts, and the master's Puppet
    CA and its `after:` dependencies (complete) before its first gated step. Each wait happens once."""

    readiness: Readiness
    master: str
    depends_on: frozenset[str] = frozenset()
    started: bool = False
    gated: bool = False

    def before(self, node: NodeRuntime, step: Step, emit: _Emitter) -> NodeOutcome | None:
        """Wait as needed before STEP; a BLOCKED outcome when what it waits for failed."""
        if not self.started:
            self.started = True
            if not self.readiness.wait_for_step(self.master, WORKERS_START_AFTER):
                return _blocked_at(node.planned, step, [self.master], emit)
        if step in GATED_STEPS and not self.gated:
            self.gated = True
            waits_for = ["the master's Puppet CA"] + sorted(self.depends_on)
            emit(node, step, events.WAITING, f"waits for {', '.join(waits_for)}")
            if not self.readiness.wait_for_step(self.master, Step.PUPPET_CA):
                return _blocked_at(node.planned, step, [self.master], emit)
            failed = self.readiness.wait_for_ends(self.depends_on)
            if failed:
                return _blocked_at(node.planned, step, failed, emit)
        return None


def incomplete_hostnames(plan: Plan, journal: Journal) -> set[str]:
    """Nodes with a failed step or steps still to do: what `up --only FAILED` retries."""
    return {planned.hostname for planned in plan.nodes()
            if not is_complete(journal.data.nodes.get(planned.hostname), planned)}


def run_node(ctx: RunContext, node: NodeRuntime, emit: _Emitter, *, readiness: Readiness | None = None,
             waits: NodeWaits | None = None) -> NodeOutcome:
    """Every step of one node in order; done steps are skipped, the first failure ends the node.
    READINESS hears of every step reached; WAITS (a worker's) holds steps back until they may run.

    A step that raises StartOver (the cloud lost the node, a half-made launch) makes the runner
    forget the node and run its steps again from launch, at most MAX_RELAUNCHES times.
    """
    _replace_if_asked(ctx, node, emit)
    _forget_redone_steps(ctx, node)
    reason = ""
    for _ in range(MAX_RELAUNCHES + 1):
        try:
            return _run_steps(ctx, node, emit, readiness, waits)
        except StartOver as start_over:
            reason = start_over.reason
            emit(node, Step.LAUNCH, events.RUNNING, reason)
            ctx.journal.forget_node(node.hostname)
            node.forget()
    why = f"{node.hostname}: launched anew {MAX_RELAUNCHES} times in this run and lost again ({reason})"
    return _fail(ctx, node, Step.LAUNCH, why, "", emit)


def _replace_if_asked(ctx: RunContext, node: NodeRuntime, emit: _Emitter) -> None:
    """A node that failed to boot (or one `--redo launch` or the watcher asks to relaunch) is replaced,
    never reused: its image or user-data may have been fixed since."""
    record = ctx.journal.node(node.hostname, node.planned.role)
    boot = record.steps.get(Step.BOOT)
    failed_boot = (boot is not None and boot.state is StepState.FAILED) or boot_failed_unrecorded(ctx, node)
    asked = Step.LAUNCH in ctx.options.redo or node.hostname in ctx.options.relaunch
    if record.provider_id and (asked or failed_boot):
        why = "replacing the node that failed to boot" if failed_boot else \
            "replacing the dead node (resurrection)" if node.hostname in ctx.options.relaunch else \
            "replacing the node (--redo launch)"
        emit(node, Step.LAUNCH, events.RUNNING, why)
        destroy_node(ctx, node)
        ctx.journal.forget_node(node.hostname)


def _forget_redone_steps(ctx: RunContext, node: NodeRuntime) -> None:
    for step in node.planned.steps:
        if step in ctx.options.redo and step is not Step.LAUNCH and ctx.journal.node(node.hostname).is_done(step):
            ctx.journal.forget_step(node.hostname, step)


def _run_steps(ctx: RunContext, node: NodeRuntime, emit: _Emitter, readiness: Readiness | None,
               waits: NodeWaits | None) -> NodeOutcome:
    journal = ctx.journal
    for step in node.planned.steps_through(ctx.options.until):
        done = journal.node(node.hostname).is_done(step)
        if not done and waits is not None:
            blocked = waits.before(node, step, emit)
            if blocked is not None:
                return blocked
        if node.provider_node is None and (done or step is not Step.LAUNCH):
            if not reacquire(ctx, node):
                raise NodeLost("the cloud has no such node any more: launching it anew")
            _record_identity(ctx, node)
        if done:
            try:  # a done step the run relies on (the master's services) is confirmed first
                rechecked = recheck_done(ctx, node, step)
            except DrbError as error:
                return _fail(ctx, node, step, str(error), getattr(error, "log_tail", ""), emit)
            emit(node, step, events.SKIPPED, rechecked or journal.node(node.hostname).steps[step].detail)
            if readiness is not None:
                readiness.reached(node.hostname, step)
            continue
        journal.start_step(node.hostname, step)
        emit(node, step, events.RUNNING)
        try:
            result = STEP_FUNCTIONS[step](ctx, node)
        except StartOver:
            raise
        except DrbError as error:
            _record_identity(ctx, node)
            failed = _fail(ctx, node, step, str(error), getattr(error, "log_tail", ""), emit)
            if error.exit_status is ExitStatus.BACKUP:
                failed.exit_status = ExitStatus.BACKUP
            return failed
        except Exception as error:  # noqa: BLE001 - a bug must fail one node, not the whole run
            _record_identity(ctx, node)
            return _fail(ctx, node, step, f"internal error: {type(error).__name__}: {error}", "", emit)
        _record_identity(ctx, node)
        journal.finish_step(node.hostname, step, ok=True, detail=result.detail, facts=result.facts)
        emit(node, step, events.DONE, result.detail)
        if readiness is not None:
            readiness.reached(node.hostname, step)
    if not is_complete(journal.node(node.hostname), node.planned):
        reason = f"stopped after {ctx.options.until} (--until); a later `up` resumes from here"
        emit(node, "", events.DONE, reason)
        return NodeOutcome(node.hostname, node.planned.role, events.DONE, str(ctx.options.until), reason)
    emit(node, "", events.DONE, "all steps done")
    return NodeOutcome(node.hostname, node.planned.role, events.DONE, complete=True)


def _record_identity(ctx: RunContext, node: NodeRuntime) -> None:
    """Copy what the steps learnt about the node (provider id, client token, address) to the journal."""
    if node.provider_node is None:
        return
    record = ctx.journal.node(node.hostname)
    wanted = {"provider_id": node.provider_node.id, "address": node.address,
              "client_token": node.client_token or record.client_token}
    changed = {name: value for name, value in wanted.items() if getattr(record, name) != value}
    if changed:
        ctx.journal.update_node(node.hostname, **changed)


def _fail(ctx: RunContext, node: NodeRuntime, step: Step, reason: str, tail: str, emit: _Emitter) -> NodeOutcome:
    ctx.journal.finish_step(node.hostname, step, ok=False, detail=reason)
    emit(node, step, events.FAILED, reason)
    return NodeOutcome(node.hostname, node.planned.role, events.FAILED, str(step), reason, tail)


def run_up(ctx: RunContext) -> RunResult:
    """Bring the environment up: the master and the workers side by side, each waiting only where
    it must (see the module's docstring), workers in parallel within `pipeline_threads`."""
    started = ctx.clock.monotonic()
    result = RunResult(ctx.spec.environment, started_at=ctx.clock.time(),
                       until=str(ctx.options.until) if ctx.options.until else "")
    selected = selected_hostnames(ctx) | {ctx.plan.master.hostname}
    total = sum(len(n.steps_through(ctx.options.until)) for n in ctx.plan.nodes() if n.hostname in selected)
    emit = _Emitter(ctx, started, total)
    master = NodeRuntime(ctx.plan.master)
    ctx.master = master
    stop_beating = threading.Event()
    beating = threading.Thread(target=_beat, args=(emit, stop_beating, ctx.options.heartbeat_seconds),
                               name="drb-heartbeat", daemon=True)
    beating.start()
    try:
        master_record = ctx.journal.data.nodes.get(master.hostname)
        if master_record is None or not master_record.provider_id:
            # Nothing made yet: subnets, zones and images the spec names are checked first, so that
            # a wrong one is one line (SpecError) before a key pair or a security group exists.
            record_preflight(ctx)
        _run_all(ctx, master, [n for wave in ctx.plan.waves for n in wave], result, emit)
    finally:
        stop_beating.set()
        ctx.close()
    result.finished_at = ctx.clock.time()
    return result


def _beat(emit: _Emitter, stop: threading.Event, interval: float) -> None:
    """Until the run ends: every few seconds, a heartbeat for the nodes in a long step."""
    while not stop.wait(max(1.0, interval / 2)):
        emit.heartbeat()


def selected_hostnames(ctx: RunContext) -> set[str]:
    """The nodes this run works on: every one, or those --only names (FAILED: the incomplete ones)."""
    options = ctx.options
    if not options.only and not options.only_failed:
        return {n.hostname for n in ctx.plan.nodes()}
    return set(options.only) | (incomplete_hostnames(ctx.plan, ctx.journal) if options.only_failed else set())


def _blocked_at(planned: PlannedNode, step: Step, failed: list[str], emit: _Emitter) -> NodeOutcome:
    where = "not started" if step is planned.steps[0] else f"stopped before {step}"
    reason = f"{where}: it waits for {', '.join(sorted(failed))}, which did not complete"
    emit(planned, str(step), events.BLOCKED, reason)
    return NodeOutcome(planned.hostname, planned.role, events.BLOCKED, str(step), reason)


def _run_all(ctx: RunContext, master: NodeRuntime, workers: list[PlannedNode], result: RunResult,
             emit: _Emitter) -> None:
    """The master and every selected worker, each in its own thread. Workers are submitted in plan
    order (waves ascending), so a node's dependencies always hold a thread before it does: a worker
    waiting in NodeWaits never keeps one of its dependencies from running."""
    readiness = Readiness()
    needs = dependencies(workers)
    selected = selected_hostnames(ctx)
    for planned in workers:
        if planned.hostname not in selected:  # outside --only: the journal says how it stands
            complete = is_complete(ctx.journal.data.nodes.get(planned.hostname), planned)
            result.outcomes[planned.hostname] = NodeOutcome(
                planned.hostname, planned.role, events.SKIPPED if complete else events.BLOCKED,
                reason="" if complete else "not selected by --only and not complete", complete=complete)
            readiness.ended(planned.hostname, complete)

    def run_one(node: NodeRuntime, waits: NodeWaits | None) -> NodeOutcome:
        ok = False
        try:
            outcome = run_node(ctx, node, emit, readiness=readiness, waits=waits)
            ok = outcome.ok
            return outcome
        finally:
            readiness.ended(node.hostname, ok)

    threads = 1 + max(1, min(len(workers) or 1, ctx.options.pipeline_threads))
    running: dict[Future, str] = {}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="drb-node") as pool:
        try:
            running[pool.submit(run_one, master, None)] = master.hostname
            for planned in workers:
                if planned.hostname in selected:
                    waits = NodeWaits(readiness, master.hostname, frozenset(needs[planned.hostname]))
                    running[pool.submit(run_one, NodeRuntime(planned), waits)] = planned.hostname
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    result.outcomes[running.pop(future)] = future.result()
        except BaseException:
            readiness.abort()
            pool.shutdown(wait=False, cancel_futures=True)
            raise


__all__ = ["NodeOutcome", "RunResult", "StepFailed", "dependencies", "incomplete_hostnames", "run_node", "run_up"]
