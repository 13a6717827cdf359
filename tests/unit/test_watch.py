"""The watcher with a fake view of the environment and a fake resurrection: when it resurrects,
when it does not (silent too briefly, the cloud says running, the lock held, a meltdown), what it
remembers across a restart, and the check plugin's verdicts and Nagios line."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from drbootstrap.environment_lock import hold_environment
from drbootstrap.executor.lifecycle import EnvironmentStatus, NodeStatus
from drbootstrap.notify import Notification, send
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.spec import load_spec
from drbootstrap.spec.operations import NotifySpec
from drbootstrap.watch import guard
from drbootstrap.watch.health import Verdict, assess
from drbootstrap.watch.state import Resurrection, WatchState, load, save
from drbootstrap.watch.unit import systemd_unit
from drbootstrap.watch.watcher import Revival, Watcher, request_resume

WORKERS = ["mail01", "web01", "web02", "db01"]
SPEC = """\
environment: demo
domain: demo.internal
provider:
  name: local
master:
  hostname: controller
  image: master
nodes:
  - role: db
    hostnames: [db01]
  - role: web
    hostnames: [web01, web02]
  - role: mail
    hostnames: [mail01]
watch:
  interval_seconds: 1
  silent_intervals: 2
  meltdown: {nodes: 3, percent: 20, window_minutes: 10}
"""
NAGIOS = re.compile(r"^DRBOOTSTRAP (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+ \| (\S+=\S+)( \S+=\S+)*$")


class World:
    """The environment as the fake status sees it; a resurrection makes a node live with a new id."""

    def __init__(self) -> None:
        self.generation = {h: 1 for h in ["controller", *WORKERS]}
        self.dead: set[str] = set()
        self.silent_only: set[str] = set()
        self.broker_down = False
        self.revived: list[tuple[str, bool]] = []
        self.sessions: list[object] = []

    def observe(self) -> EnvironmentStatus:
        status = EnvironmentStatus("demo", broker_reachable=not self.broker_down)
        for host in ["controller", *WORKERS]:
            node = NodeStatus(host, "master" if host == "controller" else host[:-2],
                              provider_id=f"{host}-{self.generation[host]}", cloud_state="running", agent="answers")
            if host in self.dead:
                node.cloud_state, node.agent = "error", "silent"
            elif host in self.silent_only:
                node.agent = "silent"
            if self.broker_down:
                node.agent = "unknown"
            status.nodes.append(node)
        return status

    def resurrect(self, hostname: str, relaunch: bool, session: object = None, until: object = None) -> Revival:
        self.revived.append((hostname, relaunch))
        self.sessions.append(session)
        self.generation[hostname] += 1
        self.dead.discard(hostname)
        return Revival(True)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch):
    spec_file = tmp_path / "env.yaml"
    spec_file.write_text(SPEC)
    spec = load_spec(spec_file)
    world = World()
    notes: list[Notification] = []
    said: list[str] = []
    clock = [1000.0]
    # The watcher asks the journal whether it still names the dead node: here it always does.
    monkeypatch.setattr(Watcher, "_journal_names", lambda self, h, dead: dead == f"{h}-{world.generation[h]}")

    def make() -> Watcher:
        return Watcher(spec, tmp_path / "state", observe=world.observe, resurrect=world.resurrect,
                       say=said.append, notify=lambda n: notes.append(n) or [], clock=lambda: clock[0])

    return make, world, notes, said, clock, EnvironmentPaths(tmp_path / "state", "demo")


def test_a_dead_worker_is_resurrected_after_the_silent_intervals_and_notified(setup):
    make, world, notes, said, clock, paths = setup
    watcher = make()
    watcher.tick()
    world.dead.add("web01")
    watcher.tick()
    assert world.revived == []  # dead for one interval only
    clock[0] += 1
    watcher.tick()
    assert world.revived == [("web01", True)]
    assert [n.event for n in notes] == ["resurrected"] and notes[0].nodes == ["web01"]
    state = load(paths.watch_state)
    assert state.resurrected_count("web01") == 1 and state.silent == {}


def test_a_silent_agent_the_cloud_calls_running_is_not_resurrected(setup):
    make, world, notes, said, clock, _ = setup
    world.silent_only.add("web02")
    watcher = make()
    for _ in range(4):
        watcher.tick()
    assert world.revived == []
    assert any("not resurrected" in line for line in said)


def test_the_master_is_reported_never_resurrected(setup):
    make, world, _, said, _, _ = setup
    world.dead.add("controller")
    watcher = make()
    watcher.tick()
    watcher.tick()
    assert world.revived == [] and any("master is dead" in line for line in said)


def test_nothing_is_counted_while_the_broker_cannot_be_asked(setup):
    make, world, _, _, _, paths = setup
    world.broker_down = True
    world.silent_only.add("web01")
    make().tick()
    make().tick()
    assert load(paths.watch_state).silent == {}


def test_the_lock_held_by_up_defers_the_resurrection(setup):
    make, world, _, said, _, paths = setup
    world.dead.add("db01")
    watcher = make()
    watcher.tick()
    with hold_environment(paths, "up"):
        watcher.tick()
    assert world.revived == [] and any("not resurrected this interval" in line for line in said)
    watcher.tick()
    assert world.revived == [("db01", True)]


def test_with_s3_state_the_watcher_resurrects_under_the_environments_lease_and_defers_to_its_holder(
        tmp_path, monkeypatch):
    from drbootstrap.state.lease import read_lease, take_lease
    from drbootstrap.state.remote import RemoteState
    from tests.unit.state_fakes import S3_STATE, STATE_KEY, use_memory_bucket

    monkeypatch.setenv("DRB_TEST_STATE_KEY", STATE_KEY)
    use_memory_bucket(monkeypatch)
    spec_file = tmp_path / "env.yaml"
    spec_file.write_text(SPEC + S3_STATE)
    spec = load_spec(spec_file)
    paths = EnvironmentPaths(tmp_path / "state", "demo")
    store = RemoteState(spec.state, paths).store
    world, said, holders = World(), [], []
    monkeypatch.setattr(Watcher, "_journal_names", lambda self, h, dead: True)

    def resurrect(hostname: str, relaunch: bool, session, until) -> Revival:
        holders.append((read_lease(store).record.command, type(session).__name__))
        return world.resurrect(hostname, relaunch, session, until)

    watcher = Watcher(spec, tmp_path / "state", observe=world.observe, resurrect=resurrect, say=said.append,
                      notify=lambda n: [])
    world.dead.add("db01")
    watcher.tick()
    other = take_lease(store, "up", seconds=60, take_over=False)  # `up` on another machine holds it
    try:
        watcher.tick()
    finally:
        other.release()
    assert world.revived == [] and any("not resurrected this interval" in line and "`up`" in line for line in said)
    watcher.tick()
    assert world.revived == [("db01", True)]
    assert holders == [("watch", "_RemoteSession")]
    assert read_lease(store).record.released


def test_three_of_five_dead_pause_resurrection_until_resume(setup):
    make, world, notes, said, clock, paths = setup
    world.dead |= {"web01", "web02", "db01"}
    watcher = make()
    for _ in range(3):
        watcher.tick()
        clock[0] += 1
    assert world.revived == []
    assert [n.event for n in notes] == ["paused"] and notes[0].nodes == ["db01", "web01", "web02"]
    assert load(paths.watch_state).pause is not None
    request_resume(paths)
    make().tick()  # a restarted watcher sees the marker just the same
    assert sorted(world.revived) == [("db01", True), ("web01", True), ("web02", True)]
    assert not paths.watch_resume.exists() and load(paths.watch_state).pause is None


def test_the_pause_lifts_when_health_returns(setup):
    make, world, notes, _, _, paths = setup
    world.dead |= {"web01", "web02", "db01"}
    watcher = make()
    watcher.tick()
    world.dead.clear()
    watcher.tick()
    assert [n.event for n in notes] == ["paused", "resumed"] and load(paths.watch_state).pause is None


def test_a_restarted_watcher_never_resurrects_the_same_dead_node_twice(setup):
    make, world, _, said, _, paths = setup
    # A watcher died during web01's resurrection, after the relaunch: the journal names a new node.
    state = WatchState(silent={"web01": 5}, unhealthy_since={"web01": 999.0},
                       resurrections=[Resurrection("web01", "web01-1", started_at=990.0)])
    save(paths.watch_state, state)
    world.dead.add("web01")
    world.generation["web01"] = 1
    make().tick()
    assert world.revived == [("web01", True)]  # the journal still names web01-1: relaunch it, once
    saved = load(paths.watch_state)
    assert len(saved.resurrections) == 1 and saved.resurrections[0].ok is True
    # The same dead node again (a resurrection that ended): never a second one.
    world.dead.add("web01")
    world.generation["web01"] = 1
    make().tick()
    make().tick()
    assert world.revived == [("web01", True)]
    assert any("not tried again" in line for line in said)


@pytest.mark.parametrize("answers_already", [False, True])
def test_a_watcher_that_died_after_the_relaunch_resumes_without_relaunching(setup, monkeypatch, answers_already):
    make, world, _, _, _, paths = setup
    save(paths.watch_state, WatchState(silent={"web01": 5}, unhealthy_since={"web01": 999.0},
                                       resurrections=[Resurrection("web01", "web01-1", started_at=990.0)]))
    if not answers_already:  # the new node may already answer, its later steps not done
        world.dead.add("web01")
    monkeypatch.setattr(Watcher, "_journal_names", lambda self, h, dead: False)
    make().tick()
    make().tick()
    assert world.revived == [("web01", False)]
    assert load(paths.watch_state).resurrections[0].ok is True


def test_meltdown_needs_both_the_count_and_the_share():
    rule = load_rule(nodes=5, percent=20)
    assert not guard.assess(rule, {f"n{i}": 0.0 for i in range(3)}, 5, 10.0).meltdown  # 60 % but 3 < 5
    assert guard.assess(rule, {f"n{i}": 0.0 for i in range(5)}, 25, 10.0).meltdown  # 5 and 20 %
    assert not guard.assess(rule, {f"n{i}": 0.0 for i in range(5)}, 26, 10.0).meltdown  # 19 %
    assert not guard.assess(rule, {f"n{i}": 0.0 for i in range(5)}, 25, 601.0).meltdown  # out of the window


def load_rule(**values):
    from drbootstrap.spec.operations import MeltdownSpec

    return MeltdownSpec(**values)


@pytest.mark.parametrize(("change", "verdict"), [
    (lambda w: None, Verdict.OK),
    (lambda w: w.dead.add("web01"), Verdict.CRITICAL),
    (lambda w: w.silent_only.add("web01"), Verdict.CRITICAL),
    (lambda w: setattr(w, "broker_down", True), Verdict.UNKNOWN),
])
def test_check_verdicts_and_a_nagios_line(change, verdict):
    world = World()
    change(world)
    health = assess(world.observe(), WatchState(resurrections=[Resurrection("web02", "x", 10.0, 52.5, True)]))
    assert health.verdict is verdict
    line = health.nagios_line()
    assert NAGIOS.match(line), line
    assert "agents=" in line and "resurrected=1" in line and "last_recovery=42.5s" in line


def test_a_failed_step_on_a_live_node_warns():
    world = World()
    status = world.observe()
    status.nodes[1].last_step = "puppet_run failed"
    assert assess(status).verdict is Verdict.WARNING


def test_check_exits_unknown_on_an_invalid_spec(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("environment: [\n")
    result = cli("check", str(bad), "--state-dir", str(tmp_path))
    assert result.exit_code == 3
    assert NAGIOS.match(result.stdout.strip() + " | x=1") or result.stdout.startswith("DRBOOTSTRAP UNKNOWN - ")


def test_watch_resume_and_print_unit(cli, tmp_path):
    spec_file = tmp_path / "env.yaml"
    spec_file.write_text(SPEC)
    result = cli("watch", str(spec_file), "--state-dir", str(tmp_path / "s"), "--resume")
    assert result.exit_code == 0 and EnvironmentPaths(tmp_path / "s", "demo").watch_resume.exists()
    unit = cli("watch", str(spec_file), "--state-dir", str(tmp_path / "s"), "--print-unit")
    assert unit.exit_code == 0 and "[Service]" in unit.stdout and " watch " in unit.stdout


def test_the_unit_quotes_its_paths():
    unit = systemd_unit(Path("/opt/drb/bin/python3"), Path("/etc/drb/my env.yaml"), Path("/var/lib/drb"), "demo")
    assert "ExecStart=/opt/drb/bin/python3 -m drbootstrap watch '/etc/drb/my env.yaml' --state-dir /var/lib/drb" \
        in unit
    assert "Restart=always" in unit


def test_notifications_reach_a_command_and_a_webhook_as_json(tmp_path):
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = tmp_path / "note.json"
        spec = NotifySpec(command=f"cat > {out}", webhook=f"http://127.0.0.1:{server.server_port}/hook",
                          timeout_seconds=5)
        lines = send(spec, Notification("paused", "demo", "three dead", ["a", "b", "c"], at=1.0))
    finally:
        server.shutdown()
        server.server_close()
    assert lines[0].endswith("exit 0") and "HTTP 204" in lines[1]
    assert json.loads(out.read_text())["event"] == "paused" and received[0]["nodes"] == ["a", "b", "c"]


def test_the_saved_state_keeps_the_newest_resurrections(tmp_path):
    from drbootstrap.watch.state import KEEP_RESURRECTIONS

    path = tmp_path / "watch.json"
    many = [Resurrection("web01", f"i-{n}", float(n), float(n) + 1, True) for n in range(KEEP_RESURRECTIONS + 5)]
    save(path, WatchState(resurrections=many))
    kept = load(path).resurrections
    assert len(kept) == KEEP_RESURRECTIONS and kept[-1].dead_id == f"i-{KEEP_RESURRECTIONS + 4}"


def test_a_damaged_state_file_is_refused_with_its_path(tmp_path):
    from drbootstrap.errors import StateWriteError

    path = tmp_path / "watch.json"
    path.write_text("{not json")
    with pytest.raises(StateWriteError, match="watch.json"):
        load(path)


def test_a_volume_still_attached_to_the_dead_node_is_detached_forced_then_attached():
    from types import SimpleNamespace

    from drbootstrap.providers.volumes import attach_named_volumes, volume_name

    calls: list[tuple] = []
    volume = SimpleNamespace(name=volume_name("demo", "db01", "data"), extra={"node_id": "i-dead"})

    class Driver:
        def list_volumes(self):
            return [volume]

        def detach_volume(self, volume, ex_force=False):
            calls.append(("detach", volume.name, ex_force))
            return True

        def attach_volume(self, node, volume, device=None):
            calls.append(("attach", node.id, device))
            return True

    driver = Driver()
    provider = SimpleNamespace(driver=lambda: driver, environment="demo", call=lambda what, fn: fn())
    wanted = [SimpleNamespace(name="data", mount="/srv/db", size_gb=1, snapshot=None)]
    done = attach_named_volumes(provider, SimpleNamespace(id="i-new"), "db01", wanted, lambda p: f"/root{p}")
    assert calls == [("detach", "drb-demo-db01-data", True), ("attach", "i-new", "/root/srv/db")]
    assert done == ["data at /srv/db"]
