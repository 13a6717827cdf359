"""One fire drill, start to end: reap what earlier drills left, rebuild the environment under the
drill's name with `up`'s own runner, check it, reboot every node and check again, judge time to
recovery against the RTO target, then tear down (per drill.teardown, and on any interruption),
keep the record and reports in the history and notify.

A SIGTERM or Ctrl-C reaches here as DrillInterrupted or KeyboardInterrupt (the CLI turns SIGTERM
into one): teardown runs before the exception goes on.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drbootstrap.drill.history import (
    FAILED,
    INTERRUPTED,
    PASSED,
    DrillRecord,
    annotate_reports,
    keep_reports,
    save_record,
)
from drbootstrap.drill.identity import DrillIdentity, drill_spec, new_identity
from drbootstrap.drill.lease import KEPT, DrillLease
from drbootstrap.drill.notify import send, should_notify
from drbootstrap.drill.reap import reap_drills, tear_down_drill
from drbootstrap.drill.steady_state import reboot_and_recheck
from drbootstrap.errors import DrbError
from drbootstrap.executor.build import build_context, provider_for
from drbootstrap.executor.context import RunContext, UpOptions
from drbootstrap.executor.events import DONE, RUNNING, Event
from drbootstrap.executor.events import FAILED as EVENT_FAILED
from drbootstrap.executor.run import run_up
from drbootstrap.executor.volume_restore import choose_for_run
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import build_plan
from drbootstrap.report import build_report, write_report
from drbootstrap.spec.models import EnvironmentSpec
from drbootstrap.state import hold_state


class DrillInterrupted(BaseException):
    """SIGTERM arrived: the drill tears down and stops."""


@dataclass(frozen=True)
class DrillSettings:
    steady_state_timeout: float = 900.0


def drill_options(identity: DrillIdentity) -> UpOptions:
    """The drill's `up` options: its nodes tagged with its id and expiry, and (with backups) the
    environment whose backups it restores: production's, identity.production_environment."""
    return UpOptions(node_tags=identity.node_tags, backup_environment=identity.production_environment)


def run_drill(spec: EnvironmentSpec, state_dir: Path, *, emit: Callable[[Event], None] = lambda e: None,
              settings: DrillSettings | None = None, identity: DrillIdentity | None = None) -> DrillRecord:
    """Run one drill of SPEC (production's spec); its record, already saved in the history."""
    settings = settings or DrillSettings()
    started = time.monotonic()

    def say(state: str, detail: str) -> None:
        emit(Event(node="", step="drill", state=state, elapsed=round(time.monotonic() - started, 3),
                   detail=detail, at=time.time()))

    reaped = reap_drills(spec, state_dir)
    for teardown in reaped.reaped:
        say(DONE, f"reaped {teardown.environment} ({teardown.reason}): {len(teardown.before)} resource(s)"
                  + ("" if teardown.clean else f", LEFT {', '.join(teardown.after)}"))
    identity = identity or new_identity(spec)
    changes = provider_for(spec, EnvironmentPaths(state_dir, spec.environment)).drill_isolation(identity.drill_id)
    derived = drill_spec(spec, identity, changes)
    lease = DrillLease.for_this_process(identity, changes)
    lease.save(state_dir)  # before anything exists: a drill killed from here on is reapable
    record = DrillRecord(identity.drill_id, spec.environment, identity.environment, identity.started_at,
                         rto_target_seconds=spec.drill.rto_minutes * 60, network=changes.get("network"),
                         reaped_at_start=[t.to_dict() for t in reaped.reaped])
    say(RUNNING, f"drill {identity.drill_id}: {identity.environment}"
                 + (f" on {record.network}" if record.network else "") + f", rehearsing {spec.environment}")
    interrupted: BaseException | None = None
    report_paths = None
    try:
        report_paths = _recover_and_verify(derived, state_dir, identity, record, settings, say, emit)
    except (KeyboardInterrupt, DrillInterrupted) as stop:
        interrupted = stop
        record.result = INTERRUPTED
        record.reasons.append("interrupted (SIGTERM or Ctrl-C) before it finished")
    except DrbError as error:
        record.result = FAILED
        record.reasons.append(str(error))
    finally:
        _finish(spec, derived, state_dir, lease, record, report_paths, say)
    if interrupted is not None:
        raise interrupted
    return record


def _recover_and_verify(derived: EnvironmentSpec, state_dir: Path, identity: DrillIdentity, record: DrillRecord,
                        settings: DrillSettings, say: Callable[[str, str], None],
                        emit: Callable[[Event], None]) -> tuple[Path, Path | None]:
    paths = EnvironmentPaths(state_dir, derived.environment)
    with hold_state(derived, paths, "drill") as session:  # as `up` holds it: a lock, or a lease on s3 state
        plan = build_plan(derived)
        ctx = build_context(derived, plan, paths, options=drill_options(identity), emit=emit)
        session.attach(ctx.journal)
        ctx.restores = choose_for_run(ctx)  # production's newest good backups, verified by the volumes step
        result = run_up(ctx)
        recovered_at = time.time()
        report = build_report(ctx.journal, result.outcomes, run_started=result.started_at,
                              run_finished=result.finished_at, plan=plan, rto_seconds=record.rto_target_seconds)
        report["environment"] = f"{derived.environment} (drill of {record.environment})"
        written = write_report(report, ctx.journal)
        session.save_report([p for p in (written.json, written.markdown, written.html) if p is not None],
                            result.started_at)
        record.slowest_step = _slowest_step(report)
        ages = [b["rpo_seconds"] for b in report["backups"] if b.get("rpo_seconds") is not None]
        record.rpo_seconds = max(ages) if ages else None  # the oldest data the drill had to restore
        record.checks_after_recovery = not result.failed and bool(report["recovered"])
        if not record.checks_after_recovery:
            record.reasons += [f"{o.hostname}: {o.state} at {o.step}: {o.reason}" for o in result.failed] \
                or ["not every node recovered"]
            say(EVENT_FAILED, f"recovery failed: {'; '.join(record.reasons)}")
            return written.json, written.html
        record.time_to_recovery_seconds = round(recovered_at - identity.started_at, 3)
        record.rto_met = record.time_to_recovery_seconds <= (record.rto_target_seconds or 0)
        say(DONE, f"recovered and checked in {record.time_to_recovery_seconds:.0f} s "
                  f"(target {record.rto_target_seconds:.0f} s: {'met' if record.rto_met else 'MISSED'}); "
                  "rebooting every node")
        steady = _steady_state(ctx, settings)
        record.steady_state = {"ok": steady.ok, "seconds": steady.seconds, "rebooted": steady.rebooted,
                               "problems": steady.problems}
        say(DONE if steady.ok else EVENT_FAILED, f"after a reboot of every node: {steady.detail}")
        if not steady.ok:
            record.reasons += [f"after the reboot: {p}" for p in steady.problems]
        if not record.rto_met:
            record.reasons.append(f"time to recovery {record.time_to_recovery_seconds:.0f} s missed the "
                                  f"RTO target of {record.rto_target_seconds:.0f} s")
        record.result = PASSED if not record.reasons else FAILED
        return written.json, written.html


def _steady_state(ctx: RunContext, settings: DrillSettings):  # noqa: ANN202 - SteadyState
    return reboot_and_recheck(ctx, timeout=settings.steady_state_timeout)


def _finish(spec: EnvironmentSpec, derived: EnvironmentSpec, state_dir: Path, lease: DrillLease,
            record: DrillRecord, report_paths: tuple[Path, Path | None] | None,
            say: Callable[[str, str], None]) -> None:
    """Keep the reports, tear down (or keep and extend the lease), record, notify. Runs whatever
    happened before, and cannot itself be cut short by a second SIGTERM or Ctrl-C."""
    import signal

    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)} \
        if _main_thread() else {}
    try:
        record.finished_at = time.time()
        keep_reports(record, state_dir, *(report_paths or (None, None)))
        policy = spec.drill.teardown
        tear = policy == "always" or (policy == "on_success" and record.passed) or record.result == INTERRUPTED
        record.teardown = {"policy": policy, "done": tear}
        if tear:
            say(RUNNING, f"tearing down {derived.environment}")
            try:
                teardown = tear_down_drill(derived, state_dir)
                record.teardown.update(teardown.to_dict())
                say(DONE if teardown.clean else EVENT_FAILED,
                    f"torn down: {len(teardown.before)} resource(s) listed before, "
                    + ("none after" if teardown.clean else f"LEFT: {', '.join(teardown.after)}"))
                if not teardown.clean:
                    record.reasons.append(f"teardown left {', '.join(teardown.after)}")
                    record.result = FAILED if record.result == PASSED else record.result
            except DrbError as error:
                record.teardown["error"] = str(error)
                record.reasons.append(f"teardown failed: {error}")
                record.result = FAILED if record.result == PASSED else record.result
        else:
            lease.state = KEPT
            lease.expires_at = time.time() + spec.drill.expire_hours * 3600
            lease.save(state_dir)
            say(DONE, f"kept {derived.environment} (teardown: {policy}) until "
                      f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(lease.expires_at))} UTC; "
                      "`drbootstrap drill FILE --cleanup` reaps it then")
        if should_notify(spec.drill.notify, record):
            assert spec.drill.notify is not None
            record.notified = send(spec.drill.notify, record)
        annotate_reports(record)
        save_record(record, state_dir)
        if tear and record.teardown.get("clean"):
            # A node's thread cut short by an interruption may have written its journal since.
            shutil.rmtree(EnvironmentPaths(state_dir, derived.environment).root, ignore_errors=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _slowest_step(report: dict) -> dict | None:
    steps = [(s["seconds"], node["hostname"], s["step"]) for node in report["nodes"] for s in node["steps"]
             if s.get("seconds") is not None]
    if not steps:
        return None
    seconds, hostname, step = max(steps)
    return {"node": hostname, "step": step, "seconds": seconds}
