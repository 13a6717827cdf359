"""What `up` shows while it runs and at its end: the done/total counter, heartbeats of long steps,
wall-clock time on plain lines, and the recap."""

from __future__ import annotations

import re

from drbootstrap.cli.up_view import PlainLines
from drbootstrap.executor import events
from drbootstrap.executor.events import Event
from drbootstrap.executor.progress import Progress
from tests.unit.test_run_cli import fake_up  # noqa: F401 - the fixture


def test_a_node_long_in_one_step_gets_a_heartbeat_saying_what_it_waits_for_once_per_interval():
    progress = Progress(total=6, interval=10.0)
    progress.note(Event("controller", "puppet_ca", events.RUNNING, role="master"), now=100.0)
    assert progress.due(105.0) == []
    first = progress.due(145.0)
    assert [(e.node, e.step, e.state) for e in first] == [("controller", "puppet_ca", events.HEARTBEAT)]
    assert first[0].detail == "waiting for the Puppet CA (puppetserver starting), 45 s"
    assert progress.due(150.0) == []  # not again within the interval
    assert progress.due(155.0)[0].detail.endswith("55 s")
    progress.note(Event("controller", "puppet_ca", events.DONE), now=156.0)
    assert progress.due(200.0) == [] and progress.done == 1


def test_a_waiting_worker_heartbeat_names_what_it_waits_for():
    progress = Progress(total=11, interval=10.0)
    progress.note(Event("web01", "puppet_sign", events.WAITING, detail="waits for db01"), now=0.0)
    assert progress.due(30.0)[0].detail == "waiting for db01, 30 s"


def test_plain_lines_carry_the_wall_clock_time_and_the_counter(capsys):
    PlainLines().event(Event("db01", "boot", events.DONE, 12.5, at=1_795_313_500.0, steps_done=3, steps_total=25))
    PlainLines().event(Event("controller", "services", events.HEARTBEAT, 40.0, "waiting for dnsmasq, 30 s",
                             at=1_795_313_500.0, steps_done=3, steps_total=25))
    first, second = capsys.readouterr().out.splitlines()
    assert re.match(r"^\d\d:\d\d:\d\d \[   12.5s 3/25\] db01 boot done$", first), first
    assert second.endswith("] controller services: waiting for dnsmasq, 30 s")


def test_up_counts_every_step_to_the_total_and_ends_with_a_recap(cli, fake_up):
    spec_file, _, state = fake_up
    result = cli("up", str(spec_file), "--state-dir", str(state), "--plain")
    assert result.exit_code == 0, result.stdout + result.stderr
    counters = re.findall(r" (\d+)/(\d+)\] ", result.stdout)
    assert counters and counters[-1][0] == counters[-1][1]
    recap = result.stdout[result.stdout.index("Recap:"):]
    assert "slowest steps:" in recap and "time to recovery:" in recap and "next: drbootstrap status" in recap
    assert all(name in recap for name in ("controller", "db01", "mail01"))


def test_a_failed_run_recap_says_which_logs_to_read_and_how_to_retry(cli, fake_up):
    spec_file, cloud, state = fake_up
    cloud.fail_boot.add("mail01")
    result = cli("up", str(spec_file), "--state-dir", str(state), "--plain")
    recap = result.stdout[result.stdout.index("Recap:"):]
    assert "mail01" in recap and "failed at boot" in recap
    assert f"drbootstrap logs {spec_file} mail01" in recap and "--only FAILED" in recap


def test_puppets_exit_2_reads_as_applied_n_changes_not_as_an_error():
    from drbootstrap.executor.steps import describe_puppet_changes

    assert describe_puppet_changes({"exitcode": 2, "changed": True,
                                    "summary": {"resources": {"changed": 3}}}) == "applied 3 changes"
    assert describe_puppet_changes({"exitcode": 2, "changed": True,
                                    "summary": {"resources": {"changed": 1}}}) == "applied 1 change"
    assert describe_puppet_changes({"exitcode": 2, "summary": {}}) == "applied changes"
    assert describe_puppet_changes({"exitcode": 0, "changed": False}) == "no changes"
