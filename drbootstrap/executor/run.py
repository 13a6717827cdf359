"""The run: the master's pipeline, then every worker as soon as the nodes it waits for are done.

A node that fails stops only itself; the nodes that wait on it are blocked with a clear reason.
Every step is journalled (start and end) so a run killed at any point resumes where it stopped.
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
    StepFailed,
    destroy_node,
    reacquire,
    steps_for,
)
from drbootstrap.exit_status import ExitStatus
from drbootstrap.journal import Step, StepState
from drbootstrap.plan import PlannedNode


@dataclass
class NodeOutcome:
    """How one node ended this run: done, failed (at which step, why, the log tail) or blocked."""

    hostname: str
    role: str
    state: str  # events.DONE | events.FAILED | events.BLOCKED | events.SKIPPED (not in --only)
    step: str = ""
    reason: str = ""
    log_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.state in (events.DONE, events.SKIPPED)


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


def run_node(ctx: RunContext, node: NodeRuntime, emit: _Emitter) -> NodeOutcome:
    """Every step of one node in order; done steps are skipped, the first failure ends the node."""
    journal = ctx.journal
    record = journal.node(node.hostname, node.planned.role)
    boot = record.steps.get(Step.BOOT)
    if record.provider_id and (Step.LAUNCH in ctx.options.redo or (boot and boot.state is StepState.FAILED)):
        # A node that failed to boot (or one asked to be relaunched) is replaced, never reused:
        # its image or user-data may have been fixed since.
        emit(node, Step.LAUNCH, events.RUNNING, "replacing the node that failed to boot")
        destroy_node(ctx, node)
    for step in steps_for(ctx, node):
        if step in ctx.options.redo and journal.node(node.hostname).is_done(step) and step is not Step.LAUNCH:
            journal.forget_step(node.hostname, step)
    for step in steps_for(ctx, node):
        if _past_until(ctx, node, step):
            return _stopped(ctx, node, emit)
        if journal.node(node.hostname).is_done(step):
            if node.provider_node is None and not _reacquire(ctx, node, emit):
                return run_node(ctx, node, emit)  # the cloud lost it: start again from launch
            emit(node, step, events.SKIPPED, journal.node(node.hostname).steps[step].detail)
            continue
        if node.provider_node is None and step is not Step.LAUNCH and not _reacquire(ctx, node, emit):
            return run_node(ctx, node, emit)
        journal.start_step(node.hostname, step)
        emit(node, step, events.RUNNING)
        try:
            detail = STEP_FUNCTIONS[step](ctx, node)
        except DrbError as error:
            return _fail(ctx, node, step, str(error), getattr(error, "log_tail", ""), emit)
        except Exception as error:  # noqa: BLE001 - a bug must fail one node, not the whole run
            return _fail(ctx, node, step, f"internal error: {type(error).__name__}: {error}", "", emit)
        journal.finish_step(node.hostname, step, ok=True, detail=detail)
        emit(node, step, events.DONE, detail)
    emit(node, "", events.DONE, "all steps done")
    return NodeOutcome(node.hostname, node.planned.role, events.DONE)


def _past_until(ctx: RunContext, node: NodeRuntime, step: Step) -> bool:
    """With --until STEP: is `step` beyond it? A node without STEP stops before its first step that
    comes after STEP in the canonical order (e.g. the master at `--until volumes`)."""
    until = ctx.options.until
    if until is None:
        return False
    own = steps_for(ctx, node)
    if until in own:
        return own.index(step) > own.index(until)
    order = list(Step)
    return order.index(step) > order.index(until)


def _stopped(ctx: RunContext, node: NodeRuntime, emit: _Emitter) -> NodeOutcome:
    reason = f"stopped after {ctx.options.until} (--until); a later `up` resumes from here"
    emit(node, "", events.DONE, reason)
    return NodeOutcome(node.hostname, node.planned.role, events.DONE, str(ctx.options.until), reason)


def _reacquire(ctx: RunContext, node: NodeRuntime, emit: _Emitter) -> bool:
    if reacquire(ctx, node):
        return True
    emit(node, Step.LAUNCH, events.RUNNING, "the cloud has no such node any more: launching it anew")
    ctx.journal.forget_node(node.hostname)
    return False


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
    selected = {n.hostname for n in workers if not ctx.options.only or n.hostname in ctx.options.only}
    pending = {n.hostname: n for n in workers}
    for hostname in sorted(set(pending) - selected):  # outside --only: the journal says how it stands
        planned = pending.pop(hostname)
        complete = all(ctx.journal.node(hostname, planned.role).is_done(s)
                       for s in steps_for(ctx, NodeRuntime(planned)))
        result.outcomes[hostname] = NodeOutcome(hostname, planned.role, events.SKIPPED if complete else events.BLOCKED,
                                                reason="" if complete else "not selected by --only and not complete")
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


__all__ = ["NodeOutcome", "RunResult", "StepFailed", "dependencies", "run_node", "run_up"]
