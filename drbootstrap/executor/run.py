"""The run: the master's pipeline, then every worker as soon as the nodes it waits for are done.

The runner is the one writer of node state: it starts and finishes every step in the journal,
records what the steps return, and decides when a node is launched anew (a step raises
StartOver; the runner forgets the node and starts it over, a bounded number of times). A node
that fails stops only itself; the nodes that wait on it are blocked with a clear reason.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from drbootstrap.errors import DrbError
from drbootstrap.executor import events
from drbootstrap.executor.context import NodeRuntime, RunContext
from drbootstrap.executor.events import Event
from drbootstrap.executor.steps import (
    STEP_FUNCTIONS,
    NodeLost,
    StartOver,
    StepFailed,
    boot_failed_unrecorded,
    destroy_node,
    reacquire,
    recheck_done,
)
from drbootstrap.exit_status import ExitStatus
from drbootstrap.journal import Journal, StepState
from drbootstrap.plan import Plan, PlannedNode, Step, is_complete

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
        return ExitStatus.PARTIAL if self.failed else ExitStatus.OK


class _Emitter:
    """Adds the run's elapsed time and the node's role and address to every event."""

    def __init__(self, ctx: RunContext, started: float) -> None:
        self.ctx, self.started = ctx, started
        self._lock = threading.Lock()

    def __call__(self, node: NodeRuntime | PlannedNode, step: str, state: str, detail: str = "") -> None:
        planned = node.planned if isinstance(node, NodeRuntime) else node
        address = node.address if isinstance(node, NodeRuntime) else ""
        event = Event(node=planned.hostname, step=step, state=state,
                      elapsed=round(self.ctx.clock.monotonic() - self.started, 3), detail=detail,
                      role=planned.role, address=address or "", at=self.ctx.clock.time())
        with self._lock:  # renderers need not be thread-safe
            self.ctx.emit(event)


def incomplete_hostnames(plan: Plan, journal: Journal) -> set[str]:
    """Nodes with a failed step or steps still to do: what `up --only FAILED` retries."""
    return {planned.hostname for planned in plan.nodes()
            if not is_complete(journal.data.nodes.get(planned.hostname), planned)}


def run_node(ctx: RunContext, node: NodeRuntime, emit: _Emitter) -> NodeOutcome:
    """Every step of one node in order; done steps are skipped, the first failure ends the node.

    A step that raises StartOver (the cloud lost the node, a half-made launch) makes the runner
    forget the node and run its steps again from launch, at most MAX_RELAUNCHES times.
    """
    _replace_if_asked(ctx, node, emit)
    _forget_redone_steps(ctx, node)
    reason = ""
    for _ in range(MAX_RELAUNCHES + 1):
        try:
            return _run_steps(ctx, node, emit)
        except StartOver as start_over:
            reason = start_over.reason
            emit(node, Step.LAUNCH, events.RUNNING, reason)
            ctx.journal.forget_node(node.hostname)
            node.forget()
    why = f"{node.hostname}: launched anew {MAX_RELAUNCHES} times in this run and lost again ({reason})"
    return _fail(ctx, node, Step.LAUNCH, why, "", emit)


def _replace_if_asked(ctx: RunContext, node: NodeRuntime, emit: _Emitter) -> None:
    """A node that failed to boot (or one `--redo launch` asks to relaunch) is replaced, never reused:
    its image or user-data may have been fixed since."""
    record = ctx.journal.node(node.hostname, node.planned.role)
    boot = record.steps.get(Step.BOOT)
    failed_boot = (boot is not None and boot.state is StepState.FAILED) or boot_failed_unrecorded(ctx, node)
    if record.provider_id and (Step.LAUNCH in ctx.options.redo or failed_boot):
        emit(node, Step.LAUNCH, events.RUNNING,
             "replacing the node that failed to boot" if failed_boot else "replacing the node (--redo launch)")
        destroy_node(ctx, node)
        ctx.journal.forget_node(node.hostname)


def _forget_redone_steps(ctx: RunContext, node: NodeRuntime) -> None:
    for step in node.planned.steps:
        if step in ctx.options.redo and step is not Step.LAUNCH and ctx.journal.node(node.hostname).is_done(step):
            ctx.journal.forget_step(node.hostname, step)


def _run_steps(ctx: RunContext, node: NodeRuntime, emit: _Emitter) -> NodeOutcome:
    journal = ctx.journal
    for step in node.planned.steps_through(ctx.options.until):
        done = journal.node(node.hostname).is_done(step)
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
            continue
        journal.start_step(node.hostname, step)
        emit(node, step, events.RUNNING)
        try:
            result = STEP_FUNCTIONS[step](ctx, node)
        except StartOver:
            raise
        except DrbError as error:
            _record_identity(ctx, node)
            return _fail(ctx, node, step, str(error), getattr(error, "log_tail", ""), emit)
        except Exception as error:  # noqa: BLE001 - a bug must fail one node, not the whole run
            _record_identity(ctx, node)
            return _fail(ctx, node, step, f"internal error: {type(error).__name__}: {error}", "", emit)
        _record_identity(ctx, node)
        journal.finish_step(node.hostname, step, ok=True, detail=result.detail, facts=result.facts)
        emit(node, step, events.DONE, result.detail)
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
    """Bring the environment up: the master, then the workers in dependency order, in parallel."""
    started = ctx.clock.monotonic()
    result = RunResult(ctx.spec.environment, started_at=ctx.clock.time(),
                       until=str(ctx.options.until) if ctx.options.until else "")
    emit = _Emitter(ctx, started)
    master = NodeRuntime(ctx.plan.master)
    ctx.master = master
    try:
        outcome = run_node(ctx, master, emit)
        result.outcomes[master.hostname] = outcome
        workers = [n for wave in ctx.plan.waves for n in wave]
        if not outcome.ok:
            for planned in workers:
                result.outcomes[planned.hostname] = _blocked(planned, [master.hostname], emit)
        else:
            _run_workers(ctx, workers, result, emit)
    finally:
        ctx.close()
    result.finished_at = ctx.clock.time()
    return result


def selected_hostnames(ctx: RunContext) -> set[str]:
    """The nodes this run works on: every one, or those --only names (FAILED: the incomplete ones)."""
    options = ctx.options
    if not options.only and not options.only_failed:
        return {n.hostname for n in ctx.plan.nodes()}
    return set(options.only) | (incomplete_hostnames(ctx.plan, ctx.journal) if options.only_failed else set())


def _blocked(planned: PlannedNode, failed: list[str], emit: _Emitter) -> NodeOutcome:
    reason = f"not started: it waits for {', '.join(sorted(failed))}, which did not complete"
    emit(planned, "", events.BLOCKED, reason)
    return NodeOutcome(planned.hostname, planned.role, events.BLOCKED, "", reason)


def dependencies(workers: list[PlannedNode]) -> dict[str, set[str]]:
    """hostname -> the hostnames it waits for (every node of each role in its group's `after`)."""
    by_role: dict[str, set[str]] = {}
    for node in workers:
        by_role.setdefault(node.role, set()).add(node.hostname)
    return {node.hostname: {h for role in (node.group.after if node.group else []) for h in by_role.get(role, ())}
            for node in workers}


def _run_workers(ctx: RunContext, workers: list[PlannedNode], result: RunResult, emit: _Emitter) -> None:
    needs = dependencies(workers)
    selected = selected_hostnames(ctx)
    pending = {n.hostname: n for n in workers}
    for hostname in sorted(set(pending) - selected):  # outside --only: the journal says how it stands
        planned = pending.pop(hostname)
        complete = is_complete(ctx.journal.data.nodes.get(hostname), planned)
        result.outcomes[hostname] = NodeOutcome(hostname, planned.role, events.SKIPPED if complete else events.BLOCKED,
                                                reason="" if complete else "not selected by --only and not complete",
                                                complete=complete)
    threads = max(1, min(len(workers) or 1, ctx.options.pipeline_threads))
    running: dict[Future, str] = {}
    waiting_announced: set[str] = set()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="drb-node") as pool:
        try:
            while pending or running:
                for hostname, planned in list(pending.items()):
                    deps = needs[hostname]
                    failed = [d for d in deps if d in result.outcomes and not result.outcomes[d].ok]
                    if failed:
                        result.outcomes[hostname] = _blocked(planned, failed, emit)
                        del pending[hostname]
                    elif all(d in result.outcomes for d in deps):
                        del pending[hostname]
                        running[pool.submit(run_node, ctx, NodeRuntime(planned), emit)] = hostname
                    elif hostname not in waiting_announced:
                        waiting_announced.add(hostname)
                        emit(planned, "", events.WAITING, f"waits for {', '.join(sorted(deps))}")
                if not running:
                    for hostname, planned in sorted(pending.items()):  # cannot happen with a valid spec
                        result.outcomes[hostname] = _blocked(planned, sorted(needs[hostname]), emit)
                    pending.clear()
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    hostname = running.pop(future)
                    result.outcomes[hostname] = future.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


__all__ = ["NodeOutcome", "RunResult", "StepFailed", "dependencies", "incomplete_hostnames", "run_node", "run_up"]
