"""`drbootstrap check` (a Nagios-convention plugin) and `drbootstrap watch` (the resurrecting loop):
they render what drbootstrap.watch decides."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import click

from drbootstrap.cli.run_commands import _SPEC_FILE, _STATE_DIR, _state_dir


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
def check(spec_file: Path, state_dir: Path | None) -> int:
    """Monitoring plugin: one Nagios status line with performance data, exit 0 OK, 1 WARNING,
    2 CRITICAL (a node dead), 3 UNKNOWN (the broker cannot be asked, or the check itself failed).

    \b
    Examples:
      drbootstrap check env.yaml
      define command { command_name check_drb  command_line drbootstrap check /etc/drb/env.yaml }
    """
    from drbootstrap.errors import DrbError
    from drbootstrap.watch.health import Verdict

    try:
        from drbootstrap.executor.lifecycle import status
        from drbootstrap.paths import EnvironmentPaths
        from drbootstrap.spec import load_spec
        from drbootstrap.watch.health import assess
        from drbootstrap.watch.state import load

        spec = load_spec(spec_file)
        state = _state_dir(state_dir)
        health = assess(status(spec, state, ping=True), load(EnvironmentPaths(state, spec.environment).watch_state))
    except DrbError as error:
        click.echo(f"DRBOOTSTRAP {Verdict.UNKNOWN.name} - {str(error).splitlines()[0].replace('|', '/')}")
        return int(Verdict.UNKNOWN)
    click.echo(health.nagios_line())
    return int(health.verdict)


@click.command()
@click.argument("spec_file", metavar="FILE", type=_SPEC_FILE)
@_STATE_DIR
@click.option("--resume", is_flag=True, help="Tell the running watcher to lift its meltdown pause, then exit.")
@click.option("--print-unit", is_flag=True, help="Print a systemd unit that runs this watcher, then exit.")
@click.option("--once", is_flag=True, help="Watch one interval and exit.")
def watch(spec_file: Path, state_dir: Path | None, resume: bool, print_unit: bool, once: bool) -> int:
    """Keep FILE's environment alive: resurrect dead workers (a standby group's spare answering for
    its dead node meanwhile), pause on a meltdown, notify.

    Runs until SIGTERM or Ctrl-C; its memory is in the environment's state directory.

    \b
    Examples:
      drbootstrap watch env.yaml
      drbootstrap watch env.yaml --resume        # after a meltdown pause, once the cause is fixed
      drbootstrap watch env.yaml --print-unit > /etc/systemd/system/drbootstrap-watch.service
    """
    from drbootstrap.paths import EnvironmentPaths
    from drbootstrap.spec import load_spec
    from drbootstrap.watch.watcher import Watcher, real_observe, real_resurrect, request_resume

    spec = load_spec(spec_file)
    state = _state_dir(state_dir)
    paths = EnvironmentPaths(state, spec.environment)
    if print_unit:
        from drbootstrap.watch.unit import systemd_unit

        click.echo(systemd_unit(Path(sys.executable), spec_file.resolve(), state.resolve(), spec.environment),
                   nl=False)
        return 0
    if resume:
        request_resume(paths)
        click.echo(f"{spec.environment}: the watcher resumes resurrection at its next interval")
        return 0

    def say(line: str) -> None:
        click.echo(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}")
        sys.stdout.flush()

    def emit(event: object) -> None:
        node, step = getattr(event, "node", ""), getattr(event, "step", "")
        state_word, detail = getattr(event, "state", ""), getattr(event, "detail", "")
        if node and state_word in ("done", "failed", "blocked"):
            say(f"  {node} {step} {state_word}{': ' + detail if detail else ''}")

    watcher = Watcher(spec, state, observe=real_observe(spec, state), resurrect=real_resurrect(spec, paths, emit),
                      say=say)
    if once:
        watcher.tick()
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        watcher.run(stop)
    except KeyboardInterrupt:
        pass
    say(f"{spec.environment}: watcher stopped")
    return 0
