"""Progress of a run for the people watching it: a done/total step counter carried on every event,
and a heartbeat for long steps (what a node waits for, and for how long), so a 70 s wait for the
Puppet CA is not 70 s of silence. Both leave the runner only as events, like everything else."""

from __future__ import annotations

from dataclasses import dataclass

from drbootstrap.executor import events
from drbootstrap.plan import Step

# What a node is waiting on while it is in a step, in the operator's words.
WAITING_FOR: dict[str, str] = {
    Step.LAUNCH: "the cloud to launch it",
    Step.REGISTER_NAME: "its name in the master's DNS",
    Step.BOOT: "it to boot",
    Step.SERVICES: "dnsmasq, the broker and sshd to answer",
    Step.TAKE_NAME: "it to take its name",
    Step.DISCOVER: "its agent to answer on the broker",
    Step.VOLUMES: "its volumes",
    Step.PUPPET_CA: "the Puppet CA (puppetserver starting)",
    Step.PUPPET_SIGN: "its Puppet certificate to be signed",
    Step.PUPPET_RUN: "its Puppet run",
    Step.PUPPET_ENABLE: "Puppet to be enabled",
    Step.RESTORE: "its restore",
    Step.CHECKS: "its checks",
}


@dataclass
class _Active:
    step: str
    what: str
    role: str
    address: str
    since: float
    beaten: float = 0.0  # when its last heartbeat went out


class Progress:
    """Counts the steps done (or found done) against the run's total, and remembers what each node
    is in now, for the heartbeat. Not thread-safe: the runner's emitter calls it under its lock."""

    def __init__(self, total: int, interval: float) -> None:
        self.total, self.interval = total, interval
        self.done = 0
        self._active: dict[str, _Active] = {}

    def note(self, event: events.Event, now: float) -> None:
        """Take one event into account: a finished step counts, a running or waiting step is watched."""
        if event.step and event.state in (events.DONE, events.SKIPPED):
            self.done += 1
        if event.state in (events.RUNNING, events.WAITING) and event.step:
            what = event.detail.removeprefix("waits for ") if event.state == events.WAITING else \
                WAITING_FOR.get(event.step, event.step)
            current = self._active.get(event.node)
            if current is None or current.step != event.step or current.what != what:
                self._active[event.node] = _Active(event.step, what, event.role, event.address, now)
        elif event.state in (events.DONE, events.FAILED, events.SKIPPED, events.BLOCKED):
            self._active.pop(event.node, None)

    def due(self, now: float) -> list[events.Event]:
        """A heartbeat for every node in a step for longer than the interval, once per interval."""
        beats = []
        for hostname, active in sorted(self._active.items()):
            waited = now - active.since
            if waited >= self.interval and now - active.beaten >= self.interval:
                active.beaten = now
                beats.append(events.Event(node=hostname, step=active.step, state=events.HEARTBEAT, role=active.role,
                                          address=active.address,
                                          detail=f"waiting for {active.what}, {waited:.0f} s"))
        return beats
