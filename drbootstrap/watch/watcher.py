"""`drbootstrap watch`: every interval, ask how the environment stands (health.py, from `status`:
the provider's view and an agent ping) and resurrect the workers that are dead.

A worker is resurrected when it has been dead for `silent_intervals` intervals in a row AND the
provider confirms it (gone, or not running): through the runner `up` uses, for that node only,
relaunched under the same name (its volumes released by the dead node and attached to the new
one by the volumes step), named, signed, Puppet applied, checked. The watcher holds the environment
for each resurrection as `up`, `drill` and `failover` do (drbootstrap.state: its lock, or its fenced
lease when the state is in s3, the run's journal writes sent under it) and skips the interval while
another command holds it.
The master is never resurrected by the watcher (every worker depends on it): it is reported.

An active node of a group with standbys (standby.py), dead by the same test, first has its name
moved to a spare (under the same hold, within the interval that found it, even during a meltdown
pause: moving a name rebuilds nothing); then it is resurrected behind it, the name given back
only once the new node is complete (_rebuild_behind).

What it saw and did is saved after every change (state.py); a resurrection begun for a dead node
(its provider id) is never begun again, a restarted watcher resumes the one it left unfinished,
and which standby answers for which name survives a restart. The meltdown guard (guard.py)
pauses resurrection; `watch --resume` (a marker file) or every node healthy again lifts the
pause. Resurrections, pauses and standby switches are notified (notify.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drbootstrap.environment_lock import EnvironmentBusy
from drbootstrap.errors import DrbError
from drbootstrap.executor.events import Event
from drbootstrap.executor.lifecycle import EnvironmentStatus, NodeStatus
from drbootstrap.notify import Notification, send
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import Step
from drbootstrap.spec.models import EnvironmentSpec
from drbootstrap.state import StateSession, hold_state
from drbootstrap.watch import guard
from drbootstrap.watch.health import Verdict, assess, confirmed_dead, node_dead
from drbootstrap.watch.standby import MoveName, choose_standby, real_move_name, standby_group, timed
from drbootstrap.watch.state import Pause, Resurrection, Switch, WatchState, load, save


@dataclass(frozen=True)
class Revival:
    """How one resurrection ended."""

    ok: bool
    reason: str = ""


Observe = Callable[[], EnvironmentStatus]
# (hostname, relaunch, the hold, the step to stop after: None for all) -> how it ended
Resurrect = Callable[[str, bool, StateSession, Step | None], Revival]


def real_observe(spec: EnvironmentSpec, state_dir: Path) -> Observe:
    from drbootstrap.executor.lifecycle import status

    return lambda: status(spec, state_dir, ping=True)


def real_resurrect(spec: EnvironmentSpec, paths: EnvironmentPaths, emit: Callable[[Event], None]) -> Resurrect:
    """The runner `up` uses, for one node: `relaunch` replaces it from launch (as `up --redo launch
    --only HOST` would, for that node alone); without it the journal resumes an unfinished one."""

    def resurrect(hostname: str, relaunch: bool, session: StateSession, until: Step | None) -> Revival:
        from drbootstrap.executor.build import build_context
        from drbootstrap.executor.context import UpOptions
        from drbootstrap.executor.run import run_up
        from drbootstrap.plan import build_plan

        plan = build_plan(spec)
        options = UpOptions(only=frozenset({hostname}), relaunch=frozenset({hostname}) if relaunch else frozenset(),
                            until=until)
        ctx = build_context(spec, plan, paths, options=options, emit=emit)
        session.attach(ctx.journal)  # s3 state: every journal write goes to the remote, fenced by the lease
        result = run_up(ctx)
        outcome = result.outcomes.get(hostname)
        if outcome is None or not (outcome.complete or (until is not None and outcome.ok)):
            return Revival(False, outcome.reason if outcome is not None else "the run did not reach it")
        return Revival(True)

    return resurrect


class Watcher:
    """One environment's watcher; `tick` is one interval's work, `run` loops until stopped."""

    def __init__(self, spec: EnvironmentSpec, state_dir: Path, *, observe: Observe, resurrect: Resurrect,
                 say: Callable[[str], None] = print, notify: Callable[[Notification], list[str]] | None = None,
                 clock: Callable[[], float] = time.time, move_name: MoveName | None = None) -> None:
        self.spec, self.paths = spec, EnvironmentPaths(state_dir, spec.environment)
        self.observe, self.resurrect, self.say, self.clock = observe, resurrect, say, clock
        self.move_name = move_name or real_move_name(spec, self.paths)
        self.notify = notify or (lambda n: send(spec.watch.notify, n))
        self.rule = spec.watch

    def _tell(self, event: str, summary: str, nodes: list[str]) -> None:
        self.say(summary)
        note = Notification(event, self.spec.environment, summary, nodes, at=self.clock())
        for line in self.notify(note):
            self.say(f"notify: {line}")

    def tick(self) -> WatchState:
        now = self.clock()
        state = load(self.paths.watch_state)
        if self.paths.watch_resume.exists():
            state.pause, state.resumed_at = None, now
            save(self.paths.watch_state, state)
            self.paths.watch_resume.unlink(missing_ok=True)
            self._tell("resumed", f"{self.spec.environment}: resurrection resumed (watch --resume)", [])
        status = self.observe()
        health = assess(status, state)
        if health.verdict is Verdict.UNKNOWN:
            self.say(f"{health.summary}; nothing counted this interval")
            return state
        nodes = {n.hostname: n for n in status.nodes}
        for hostname, node in nodes.items():
            if node_dead(node):
                state.silent[hostname] = state.silent.get(hostname, 0) + 1
                state.unhealthy_since.setdefault(hostname, now)
            else:
                state.silent.pop(hostname, None)
                state.unhealthy_since.pop(hostname, None)
        for hostname, standby in list(state.serving.items()):
            if standby not in nodes or node_dead(nodes[standby]):
                del state.serving[hostname]  # the spare died too: another may take the name
        counted = {h: t for h, t in state.unhealthy_since.items() if t > state.resumed_at}
        verdict = guard.assess(self.rule.meltdown, counted, len(nodes), now)
        if verdict.meltdown and state.pause is None:
            state.pause = Pause(verdict.reason, now, verdict.unhealthy)
            save(self.paths.watch_state, state)
            self._tell("paused", f"{self.spec.environment}: meltdown guard: {verdict.reason}; "
                       "resume with `drbootstrap watch FILE --resume`", verdict.unhealthy)
        elif state.pause is not None and not state.unhealthy_since:
            state.pause = None
            save(self.paths.watch_state, state)
            self._tell("resumed", f"{self.spec.environment}: every node healthy again; resurrection resumed", [])
        save(self.paths.watch_state, state)
        state = self._give_names_back(state, nodes)
        state = self._switch_standbys(state, nodes)
        if state.pause is not None:
            self.say(f"{self.spec.environment}: resurrection paused since "
                     f"{time.strftime('%H:%M:%S', time.gmtime(state.pause.since))}: {state.pause.reason}")
            return state
        for unfinished in [r for r in state.resurrections if r.ok is None]:
            # A watcher killed mid-resurrection: the node may already answer, its steps are not done.
            state = self._resurrect(state, unfinished.hostname, unfinished.dead_id)
        for hostname in sorted(state.silent):
            found = nodes.get(hostname)
            if found is None or state.silent[hostname] < self.rule.silent_intervals:
                continue
            node = found
            if node.role == "master":
                self.say(f"{hostname}: the master is dead ({node.cloud_state}); the watcher does not rebuild it: "
                         "run `drbootstrap up FILE`")
                continue
            if not confirmed_dead(node):
                self.say(f"{hostname}: agent silent for {state.silent[hostname]} intervals but the cloud says "
                         f"{node.cloud_state}; not resurrected")
                continue
            state = self._resurrect(state, hostname, node.provider_id or "")
        return state

    def _give_names_back(self, state: WatchState, nodes: dict[str, NodeStatus]) -> WatchState:
        """A node a spare answers for that is complete and alive again (rebuilt by `up`, or a rebuild
        whose last move failed) gets its name back."""
        for hostname in sorted(state.serving):
            node = nodes.get(hostname)
            if node is None or node_dead(node) or not node.complete:
                continue
            try:
                with hold_state(self.spec, self.paths, "watch"):
                    how = self.move_name(hostname, node)
                    state = load(self.paths.watch_state)
                    state.serving.pop(hostname, None)
                    save(self.paths.watch_state, state)
            except DrbError as error:  # EnvironmentBusy too: the next interval tries again
                self.say(f"{hostname}: alive again, its name not given back yet: {error}")
                continue
            self.say(f"{hostname}: alive and complete again; its name is its own again ({how})")
        return state

    def _switch_standbys(self, state: WatchState, nodes: dict[str, NodeStatus]) -> WatchState:
        """Move the name of each active node dead long enough (and confirmed) to a spare of its group."""
        for hostname in sorted(state.silent):
            node = nodes.get(hostname)
            if (node is None or hostname in state.serving or state.silent[hostname] < self.rule.silent_intervals
                    or not confirmed_dead(node) or standby_group(self.spec, hostname) is None):
                continue
            takeover = choose_standby(self.spec, hostname, nodes, state.serving)
            if takeover is None:
                self.say(f"{hostname}: dead, and no standby of its group is ready to take its name")
                continue
            try:
                with hold_state(self.spec, self.paths, "watch"):
                    how, seconds = timed(self.move_name, takeover)
                    state = load(self.paths.watch_state)
                    state.serving[hostname] = takeover.standby.hostname
                    state.switches.append(Switch(hostname, takeover.standby.hostname, node.provider_id or "",
                                                 self.clock(), seconds, how))
                    save(self.paths.watch_state, state)
            except EnvironmentBusy as busy:
                self.say(f"{hostname}: its name not moved this interval: {busy.message}")
                continue
            except DrbError as error:
                self.say(f"{hostname}: its name could not move to {takeover.standby.hostname}: {error}")
                continue
            self._tell("standby_switch", f"{hostname}: dead; {takeover.standby.hostname} answers for it now "
                       f"({how}, {seconds:.1f} s); rebuilding {hostname} behind it",
                       [hostname, takeover.standby.hostname])
        return state

    def _resurrect(self, state: WatchState, hostname: str, dead_id: str) -> WatchState:
        earlier = state.tried(hostname, dead_id)
        if earlier is not None and earlier.ok is not None:
            self.say(f"{hostname}: its resurrection from {dead_id or 'a lost node'} already "
                     f"{'succeeded' if earlier.ok else 'failed: ' + earlier.reason}; not tried again "
                     "(run `drbootstrap up FILE --only FAILED`)")
            return state
        try:
            with hold_state(self.spec, self.paths, "watch") as session:
                state = load(self.paths.watch_state)  # under the lock: what another watcher did counts
                earlier = state.tried(hostname, dead_id)
                if earlier is not None and earlier.ok is not None:
                    return state
                if earlier is None:
                    earlier = Resurrection(hostname, dead_id, started_at=self.clock())
                    state.resurrections.append(earlier)
                    self.say(f"{hostname}: dead ({dead_id or 'gone'}) for {state.silent.get(hostname, 0)} "
                             "intervals: resurrecting it")
                else:
                    self.say(f"{hostname}: resuming its unfinished resurrection")
                save(self.paths.watch_state, state)
                try:
                    # Relaunch only while the journal still names the dead node: a watcher that died
                    # after the relaunch resumes the new node instead of launching a third.
                    relaunch = self._journal_names(hostname, dead_id)
                    spare = state.serving.get(hostname)
                    revival = self.resurrect(hostname, relaunch, session, None) if spare is None else \
                        self._rebuild_behind(hostname, spare, relaunch, session)
                except DrbError as error:
                    revival = Revival(False, str(error))
                earlier.finished_at, earlier.ok, earlier.reason = self.clock(), revival.ok, revival.reason
                if revival.ok:
                    state.silent.pop(hostname, None)
                    state.unhealthy_since.pop(hostname, None)
                    state.serving.pop(hostname, None)  # _rebuild_behind gave it its name back
                save(self.paths.watch_state, state)
        except EnvironmentBusy as busy:
            self.say(f"{hostname}: not resurrected this interval: {busy.message}")
            return state
        seconds = earlier.finished_at - earlier.started_at
        if revival.ok:
            self._tell("resurrected", f"{hostname}: resurrected in {seconds:.1f} s "
                       f"({state.resurrected_count(hostname)} time(s) so far)", [hostname])
        else:
            self._tell("resurrection_failed", f"{hostname}: resurrection failed after {seconds:.1f} s: "
                       f"{revival.reason}", [hostname])
        return state

    def _rebuild_behind(self, hostname: str, spare: str, relaunch: bool, session: StateSession) -> Revival:
        """Rebuild a node whose name a spare answers for, without handing the name to a half-built node:
        its naming step gives it its name (it learns it from its PTR at boot), the name goes back to the
        spare while it is configured and checked, and comes to it only once it is complete."""
        named = self.resurrect(hostname, relaunch, session, Step.TAKE_NAME)
        if not named.ok:
            return named
        self.move_name(hostname, self._journal_node(spare))
        done = self.resurrect(hostname, False, session, None)
        if done.ok:
            how = self.move_name(hostname, self._journal_node(hostname))
            self.say(f"{hostname}: complete; its name is its own again ({how})")
        return done

    def _journal_node(self, hostname: str) -> NodeStatus:
        from drbootstrap.journal import Journal

        record = Journal.at(self.paths).data.nodes.get(hostname)
        return NodeStatus(hostname, "", provider_id=record.provider_id if record else None,
                          address=record.address if record else None)

    def _journal_names(self, hostname: str, dead_id: str) -> bool:
        from drbootstrap.journal import Journal

        record = Journal.at(self.paths).data.nodes.get(hostname)
        return record is not None and bool(record.provider_id) and record.provider_id == dead_id

    def run(self, stop: threading.Event) -> None:
        """Tick every interval until `stop` is set; an error in one interval is said and the loop goes on."""
        self.say(f"{self.spec.environment}: watching every {self.rule.interval_seconds:g} s "
                 f"(dead for {self.rule.silent_intervals} intervals and confirmed by the cloud: resurrected)")
        while not stop.is_set():
            try:
                self.tick()
            except DrbError as error:
                self.say(f"{self.spec.environment}: this interval failed: {error}")
            stop.wait(self.rule.interval_seconds)


def request_resume(paths: EnvironmentPaths) -> None:
    """What `watch --resume` does: leave the marker the running watcher sees at its next interval."""
    paths.watch_resume.parent.mkdir(parents=True, exist_ok=True)
    paths.watch_resume.write_text(f"{time.time()}\n")
