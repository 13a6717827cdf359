"""A broker node's RabbitMQ supervisor without RabbitMQ: restarts with a growing backoff (reset after a
healthy run), one line per restart, a start that fails retried, one supervisor per pid file, SIGTERM
stopping the service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from drbootstrap.errors import WaitTimeoutError
from drbootstrap.images.broker_supervisor import Supervisor, running_pid, supervise


class Service:
    def __init__(self, clock: list[float], runs_for: float, pid: int) -> None:
        self.clock, self.runs_for, self.node_pid = clock, runs_for, pid
        self.stopped = 0

    def wait(self) -> int:
        self.clock[0] += self.runs_for
        return 137

    def stop(self) -> None:
        self.stopped += 1


def supervisor(runs: list, lines: list[str]) -> tuple[Supervisor, list[float], list[Service]]:
    """A supervisor whose starts take RUNS in turn: a number (how long that run lasts) or an error."""
    clock = [0.0]
    started: list[Service] = []
    pids = iter(range(100, 200))

    def start() -> Service:
        run = runs.pop(0)
        if isinstance(run, Exception):
            raise run
        started.append(Service(clock, run, next(pids)))
        return started[-1]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return Supervisor("rabbitmq", start, lines.append, clock=lambda: clock[0], sleep=sleep), clock, started


def test_each_restart_is_one_line_and_the_backoff_doubles_to_a_minute():
    lines: list[str] = []
    sup, _, started = supervisor([1.0] * 9, lines)
    sup.run(rounds=9)
    restarts = [line for line in lines if "restarting" in line]
    assert restarts[0] == "rabbitmq ended (pid 100, exit status 137); restarting it in 1 s"
    assert [line.rsplit(" in ", 1)[1] for line in restarts] == ["1 s", "2 s", "4 s", "8 s", "16 s", "32 s",
                                                                "60 s", "60 s", "60 s"]
    assert all(service.stopped == 1 for service in started)  # what is left of each run is cleaned up
    assert sup.restarts == 9


def test_a_run_of_five_minutes_resets_the_backoff():
    lines: list[str] = []
    sup, _, _ = supervisor([1.0, 1.0, 1.0, 400.0, 1.0], lines)
    sup.run(rounds=5)
    assert [line.rsplit(" in ", 1)[1] for line in lines if "restarting" in line] == ["1 s", "2 s", "4 s", "1 s",
                                                                                     "2 s"]


def test_a_start_that_fails_is_retried_after_the_backoff():
    lines: list[str] = []
    sup, _, started = supervisor([WaitTimeoutError("RabbitMQ did not accept STOMP CONNECT"),
                                  OSError(28, "No space left on device"), 1.0], lines)
    sup.run(rounds=3)
    assert lines[0] == "rabbitmq did not start: RabbitMQ did not accept STOMP CONNECT; restarting it in 1 s"
    assert lines[1] == "rabbitmq did not start: [Errno 28] No space left on device; restarting it in 2 s"
    assert lines[2] == "rabbitmq running (pid 100)" and len(started) == 1


def test_a_second_supervisor_leaves_the_running_one_alone(tmp_path):
    pid_file = tmp_path / "rabbitmq.supervisor.pid"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        pid_file.write_text(f"{sleeper.pid}\n")
        lines: list[str] = []
        sup, _, started = supervisor([1.0], lines)
        assert supervise(sup, pid_file) == 0
        assert started == [] and lines == [f"rabbitmq is already supervised (pid {sleeper.pid}, {pid_file})"]
        assert pid_file.read_text() == f"{sleeper.pid}\n"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert running_pid(pid_file) is None  # a dead supervisor's pid file does not count


SUPERVISED = """
import sys, time
from pathlib import Path
from drbootstrap.images.broker_supervisor import Supervisor, supervise

class Forever:
    node_pid = 4242
    def wait(self):
        time.sleep(3600)
        return 0
    def stop(self):
        print("service stopped", flush=True)

supervise(Supervisor("rabbitmq", Forever, lambda line: print(line, flush=True)), Path(sys.argv[1]))
"""


def test_sigterm_stops_the_service_then_the_supervisor_and_removes_its_pid_file(tmp_path):
    pid_file = tmp_path / "rabbitmq.supervisor.pid"
    process = subprocess.Popen([sys.executable, "-c", SUPERVISED, str(pid_file)], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[2])
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "rabbitmq running (pid 4242)"
        assert running_pid(pid_file) == process.pid
        os.kill(process.pid, signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert out.splitlines() == ["service stopped", "rabbitmq stopped (SIGTERM)"]
    assert process.returncode == 0 and not pid_file.exists()
