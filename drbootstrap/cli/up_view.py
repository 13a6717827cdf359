"""What `up` shows while it runs and when it ends (renders only): a live table on a terminal, else
one plain line per event with the wall-clock time and the done/total step counter, or JSON lines;
heartbeats of long steps in each; then a recap (per-node outcome, slowest steps, time to recovery,
what to do next).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from types import TracebackType
from typing import Any, Self

import click

from drbootstrap.cli.output import with_schema_version

HEARTBEAT = "heartbeat"  # executor.events.HEARTBEAT, not imported: the executor loads only when up runs


def renderer(as_json: bool, plain: bool) -> Any:
    if as_json:
        return JsonLines()
    if not plain and sys.stdout.isatty():
        return LiveTable()
    return PlainLines()


def _counter(event: Any) -> str:
    return f" {event.steps_done}/{event.steps_total}" if getattr(event, "steps_total", 0) else ""


def _clock(event: Any) -> str:
    return time.strftime("%H:%M:%S", time.localtime(event.at or time.time()))


class PlainLines:
    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        pass

    def event(self, event: Any) -> None:
        where = f"{_clock(event)} [{event.elapsed:7.1f}s{_counter(event)}]"
        if event.state == HEARTBEAT:  # "controller puppet_ca: waiting for the Puppet CA, 45 s"
            click.echo(f"{where} {event.node} {event.step}: {event.detail}")
            return
        step = f" {event.step}" if event.step else ""
        detail = f": {event.detail}" if event.detail else ""
        click.echo(f"{where} {event.node or '-'}{step} {event.state}{detail}")


class JsonLines(PlainLines):
    def event(self, event: Any) -> None:
        click.echo(json.dumps(with_schema_version({"event": "step", **event.to_dict()})))


class LiveTable(PlainLines):
    """A rich Live table, refreshed from the events (rows keyed by node); the title counts the steps."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.rows: dict[str, dict[str, Any]] = {}
        self.messages: list[str] = []
        self.counter = ""
        self.started = time.time()
        self._lock = threading.Lock()
        self.live = Live(self._table(), console=console or Console(), refresh_per_second=4, transient=False)

    def __enter__(self) -> Self:
        self.live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.live.update(self._table())
        self.live.__exit__(exc_type, exc, traceback)

    def event(self, event: Any) -> None:
        with self._lock:
            self.counter = _counter(event).strip() or self.counter
            if not event.node:
                self.messages = (self.messages + [f"{_clock(event)} {event.detail}"])[-3:]
            else:
                row = self.rows.setdefault(event.node, {"role": event.role, "address": "", "state": "",
                                                        "step": "", "detail": "", "started": time.monotonic()})
                if event.state == HEARTBEAT:
                    row["detail"] = event.detail
                else:
                    row.update(state=event.state, step=event.step or row["step"],
                               address=event.address or row["address"],
                               detail=event.detail if event.state in ("waiting", "blocked", "failed") else "")
                if event.state in ("failed", "blocked") or (event.state == "done" and not event.step):
                    row["finished"] = time.monotonic()
        self.live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table

        counter = f", {self.counter} steps" if getattr(self, "counter", "") else ""
        title = f"drbootstrap up{counter}, {time.strftime('%H:%M:%S')}"
        table = Table(title=title, caption="\n".join(getattr(self, "messages", [])) or None)
        for column in ("node", "role", "address", "state", "step", "elapsed", "detail"):
            table.add_column(column, no_wrap=True, max_width=60 if column == "detail" else None)
        colours = {"done": "green", "failed": "red", "blocked": "yellow", "running": "cyan"}
        for node, row in getattr(self, "rows", {}).items():
            elapsed = row.get("finished", time.monotonic()) - row["started"]
            state = row["state"]
            table.add_row(node, row["role"], row["address"], f"[{colours.get(state, 'white')}]{state}[/]",
                          str(row["step"]), f"{elapsed:.0f} s", row.get("detail", ""))
        return table


def print_recap(result: Any, figures: Any, spec_file: str) -> None:
    """The end of a run in a few lines: each node's outcome, the slowest steps, time to recovery,
    and the commands to type next."""
    seconds = result.finished_at - result.started_at
    up = sum(1 for outcome in result.outcomes.values() if outcome.ok)
    started = time.strftime("%H:%M:%S", time.localtime(result.started_at))
    ended = time.strftime("%H:%M:%S", time.localtime(result.finished_at))
    click.echo(f"\nRecap: {result.environment}: {up} of {len(result.outcomes)} nodes ok, "
               f"{seconds:.1f} s ({started} to {ended})")
    for hostname in sorted(result.outcomes):
        outcome = result.outcomes[hostname]
        where = f" at {outcome.step}" if outcome.step and not outcome.ok else ""
        why = f": {outcome.reason}" if outcome.reason and not outcome.ok else ""
        click.echo(f"  {hostname:<16} {outcome.role:<10} {outcome.state}{where}{why}")
    if figures is not None:
        if figures.time_to_recovery_seconds is not None:
            target = figures.rto_target_seconds
            verdict = f" (RTO target {target:.0f} s: {'met' if figures.rto_met else 'MISSED'})" if target else ""
            click.echo(f"time to recovery: {figures.time_to_recovery_seconds:.1f} s{verdict}")
        else:
            click.echo("time to recovery: not recovered yet (some nodes are not complete)")
        if figures.slowest_steps:
            click.echo("slowest steps: " + ", ".join(f"{host} {step} {secs:.1f} s"
                                                     for host, step, secs in figures.slowest_steps))
    click.echo("next: " + "; ".join(next_commands(result, spec_file)))


def next_commands(result: Any, spec_file: str) -> list[str]:
    """What an operator would type next, given how the run ended."""
    if result.failed:
        first = result.failed[0].hostname
        return [f"drbootstrap logs {spec_file} {first}", f"drbootstrap up {spec_file} --only FAILED",
                f"drbootstrap status {spec_file}"]
    if result.until:
        return [f"drbootstrap up {spec_file}  (goes on past --until {result.until})"]
    return [f"drbootstrap status {spec_file}", f"drbootstrap ping -f {spec_file}",
            f"drbootstrap ssh {spec_file} NODE"]
