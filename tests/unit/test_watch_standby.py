"""Standby groups: the spec's spares in the plan, the master's hosts file moving a name to a spare
and back, and the watcher switching a dead active node's name to a spare (then rebuilding it)
with a fake view of the environment."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from drbootstrap.dns.hosts_file import add_entry, move_name, read_entries
from drbootstrap.executor.lifecycle import EnvironmentStatus, NodeStatus
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import build_plan
from drbootstrap.spec import load_spec
from drbootstrap.watch.health import Verdict, assess
from drbootstrap.watch.state import load
from drbootstrap.watch.watcher import Revival, Watcher

SPEC = """\
environment: demo
domain: demo.internal
provider:
  name: local
nodes:
  - role: web
    hostnames: [web01]
    standby: 2
  - role: mail
    hostnames: [mail01]
watch:
  interval_seconds: 1
  silent_intervals: 2
  meltdown: {nodes: 2, percent: 20, window_minutes: 10}
"""
HOSTS = ["controller", "web01", "web-standby1", "web-standby2", "mail01"]


@pytest.fixture
def spec(tmp_path: Path):
    spec_file = tmp_path / "env.yaml"
    spec_file.write_text(SPEC)
    return load_spec(spec_file)


def test_a_group_with_standby_builds_its_spares_named_by_role_after_its_nodes(spec):
    assert spec.group("web").standby_hostnames() == ["web-standby1", "web-standby2"]
    assert spec.worker_hostnames() == ["web01", "web-standby1", "web-standby2", "mail01"]
    planned = {n.hostname: n for n in build_plan(spec).nodes()}
    assert planned["web-standby1"].role == "web" and planned["web-standby1"].steps == planned["web01"].steps


def test_a_moved_name_resolves_to_the_spare_beside_its_own_and_goes_back_when_rebuilt(tmp_path):
    hosts = tmp_path / "hosts"
    add_entry(hosts, "web01", "10.0.0.5", domain="demo.internal")
    add_entry(hosts, "web-standby1", "10.0.0.6", domain="demo.internal")
    move_name(hosts, "web01", "10.0.0.6", domain="demo.internal")
    assert [e.line() for e in read_entries(hosts)] == [
        "10.0.0.6 web-standby1.demo.internal web-standby1 web01.demo.internal web01"]
    add_entry(hosts, "web01", "10.0.0.9", domain="demo.internal", replace=True)  # the rebuilt node's naming step
    assert sorted(e.line() for e in read_entries(hosts)) == [
        "10.0.0.6 web-standby1.demo.internal web-standby1", "10.0.0.9 web01.demo.internal web01"]


class World:
    def __init__(self) -> None:
        self.generation = {h: 1 for h in HOSTS}
        self.dead: set[str] = set()
        self.moved: list[tuple[str, str]] = []
        self.revived: list[str] = []

    def observe(self) -> EnvironmentStatus:
        status = EnvironmentStatus("demo", broker_reachable=True)
        for index, host in enumerate(HOSTS):
            node = NodeStatus(host, "master" if host == "controller" else host.split("-")[0].rstrip("0123456789"),
                              provider_id=f"{host}-{self.generation[host]}", address=f"10.0.0.{index + 2}",
                              cloud_state="running", agent="answers")
            if host in self.dead:
                node.cloud_state, node.agent = "absent", "silent"
            status.nodes.append(node)
        return status

    def move_name(self, hostname: str, standby: NodeStatus) -> str:
        self.moved.append((hostname, standby.hostname))
        return f"dns: {hostname} -> {standby.address}"

    def resurrect(self, hostname: str, relaunch: bool, session: object, until: object) -> Revival:
        assert self.moved and self.moved[-1] == (hostname, "web-standby1")  # the spare answers meanwhile
        self.revived.append((hostname, relaunch, str(until) if until else "all"))
        if until is None:
            self.generation[hostname] += 1
            self.dead.discard(hostname)
        return Revival(True)


@pytest.fixture
def watched(spec, tmp_path, monkeypatch):
    world, notes, said = World(), [], []
    monkeypatch.setattr(Watcher, "_journal_names", lambda self, h, dead: True)

    def make(resurrect=None) -> Watcher:
        return Watcher(spec, tmp_path / "state", observe=world.observe, resurrect=resurrect or world.resurrect,
                       say=said.append, notify=lambda n: notes.append(n) or [], move_name=world.move_name)

    return make, world, notes, said, EnvironmentPaths(tmp_path / "state", "demo")


def test_a_dead_active_node_has_its_name_moved_to_a_spare_then_is_rebuilt_behind_it(watched):
    make, world, notes, _, paths = watched
    world.dead.add("web01")
    watcher = make(resurrect=lambda h, r, s, u: Revival(False, "the cloud refused"))
    watcher.tick()
    assert world.moved == []  # one silent interval is not enough
    watcher.tick()
    assert world.moved == [("web01", "web-standby1")]
    state = load(paths.watch_state)
    assert state.serving == {"web01": "web-standby1"} and state.switches[0].how == "dns: web01 -> 10.0.0.4"
    switch = [n for n in notes if n.event == "standby_switch"]
    assert len(switch) == 1 and switch[0].nodes == ["web01", "web-standby1"]
    make().tick()  # a restarted watcher: the spare still answers, the name is not moved again
    assert world.moved == [("web01", "web-standby1")]
    assert world.revived == [] and load(paths.watch_state).serving == {"web01": "web-standby1"}


def test_the_name_comes_back_only_once_the_rebuilt_node_is_complete_and_the_spare_waits_again(watched):
    make, world, notes, _, paths = watched
    world.dead.add("web01")
    watcher = make()
    watcher.tick()
    watcher.tick()
    # named (its PTR at boot), the name back on the spare while Puppet and checks run, then its own
    assert world.revived == [("web01", True, "take_name"), ("web01", False, "all")]
    assert world.moved == [("web01", "web-standby1"), ("web01", "web-standby1"), ("web01", "web01")]
    assert load(paths.watch_state).serving == {}
    assert [n.event for n in notes] == ["standby_switch", "resurrected"]


def test_a_dead_spare_is_not_chosen(watched):
    make, world, _, said, paths = watched
    world.dead.update({"web01", "web-standby1"})
    watcher = make(resurrect=lambda h, r, s, u: Revival(False, "no"))
    watcher.tick()
    watcher.tick()
    assert ("web01", "web-standby2") in world.moved and all(m[1] != "web-standby1" for m in world.moved)
    assert load(paths.watch_state).serving == {"web01": "web-standby2"}


def test_the_name_moves_even_while_the_meltdown_guard_pauses_resurrection(watched):
    make, world, notes, _, paths = watched
    world.dead.update({"web01", "mail01"})
    watcher = make()
    watcher.tick()
    watcher.tick()
    assert load(paths.watch_state).pause is not None
    assert world.moved == [("web01", "web-standby1")] and world.revived == []
    assert {n.event for n in notes} == {"paused", "standby_switch"}


def test_check_and_status_say_which_node_answers_for_a_dead_active_one(watched):
    make, world, _, _, paths = watched
    world.dead.add("web01")
    watcher = make(resurrect=lambda h, r, s, u: Revival(False, "no"))
    watcher.tick()
    watcher.tick()
    health = assess(world.observe(), load(paths.watch_state))
    assert health.verdict is Verdict.CRITICAL
    assert "web01 answered by web-standby1" in health.nagios_line()
    assert "standby_switches=1" in health.perfdata()


def test_ec2_moves_the_dead_nodes_tagged_elastic_address_to_the_spare():
    from drbootstrap.providers import ec2_resources

    calls: list[tuple[str, object]] = []
    address = SimpleNamespace(ip="203.0.113.5", instance_id="i-dead")
    driver = SimpleNamespace(
        ex_disassociate_address=lambda a, domain: calls.append(("disassociate", a.instance_id)),
        ex_associate_address_with_node=lambda node, a, domain: calls.append(("associate", node.id)))
    pacing = SimpleNamespace(call=lambda driver, what, fn, **_: fn())
    found = {"tag:drbootstrap:environment": "demo", "tag:drbootstrap:hostname": "web01"}
    original = ec2_resources.describe_addresses
    try:
        ec2_resources.describe_addresses = lambda d, filters: [address] if filters == found else []  # type: ignore
        spare = SimpleNamespace(id="i-spare", name="web-standby1")
        moved = ec2_resources.move_elastic_address(driver, "demo", "web01", spare, pacing=pacing)  # type: ignore
        none = ec2_resources.move_elastic_address(driver, "demo", "mail01", spare, pacing=pacing)  # type: ignore
    finally:
        ec2_resources.describe_addresses = original
    assert moved == "203.0.113.5" and none is None
    assert calls == [("disassociate", "i-dead"), ("associate", "i-spare")]



# Nagios plugin guidelines: 'label'=value[UOM];[warn];[crit];[min];[max], UOM one of s ms us % B KB MB TB c,
# value "U" when it cannot be determined; space-separated after the one '|' of the status line.
PERFDATA = re.compile(
    r"^(?:'[^'=]+'|[^'= ]+)=(?:U|-?\d+(?:\.\d+)?(?:s|ms|us|%|B|KB|MB|TB|c)?)(?:;[^; ]*){0,4}$")


@pytest.mark.parametrize("dead", [set(), {"web01"}])
def test_the_check_line_is_nagios_plugin_output_with_valid_perfdata(watched, dead):
    make, world, _, _, paths = watched
    world.dead.update(dead)
    watcher = make(resurrect=lambda h, r, s, u: Revival(True))
    watcher.tick()
    watcher.tick()
    line = assess(world.observe(), load(paths.watch_state)).nagios_line()
    assert "\n" not in line and line.count("|") == 1
    status, perfdata = line.split(" | ")
    assert status.startswith(("DRBOOTSTRAP OK - ", "DRBOOTSTRAP CRITICAL - "))
    items = perfdata.split(" ")
    assert [i.split("=")[0] for i in items] == ["agents", "resurrected", "last_recovery", "standby_switches"]
    assert all(PERFDATA.match(item) for item in items), items


def test_status_says_which_node_answers_for_a_dead_active_one(cli, tmp_path, monkeypatch):
    from drbootstrap.executor.lifecycle import _standby_serving
    from drbootstrap.watch.state import WatchState, save
    from tests.unit.executor_fakes import SPEC as FAKES_SPEC
    from tests.unit.executor_fakes import load_spec_text

    paths = EnvironmentPaths(tmp_path / "state", "demo")
    save(paths.watch_state, WatchState(serving={"web01": "web-standby1"}))
    assert _standby_serving(paths) == {"web01": "web-standby1"}
    spec_file = tmp_path / "env.yaml"
    spec_file.write_text(FAKES_SPEC)
    load_spec_text(monkeypatch)
    nodes = [NodeStatus("web01", "web", answered_by="web-standby1"),
             NodeStatus("web-standby1", "web", cloud_state="running", agent="answers", standby=True)]
    monkeypatch.setattr("drbootstrap.executor.status",
                        lambda spec, state_dir, ping, **where: EnvironmentStatus("demo", nodes=nodes))
    result = cli("status", str(spec_file))
    assert "active: web-standby1 answers for web01" in result.stdout
    assert "web (standby)" in result.stdout


def test_a_node_rebuilt_outside_the_watcher_gets_its_name_back_once_complete(watched):
    make, world, _, _, paths = watched
    world.dead.add("web01")
    watcher = make(resurrect=lambda h, r, s, u: Revival(False, "no"))
    watcher.tick()
    watcher.tick()
    assert load(paths.watch_state).serving == {"web01": "web-standby1"}
    world.dead.discard("web01")  # `up --only web01` rebuilt it; its journal says complete
    original = world.observe

    def observe_complete() -> EnvironmentStatus:
        status = original()
        for node in status.nodes:
            node.complete = True
        return status

    watcher.observe = observe_complete
    watcher.tick()
    assert world.moved[-1] == ("web01", "web01") and load(paths.watch_state).serving == {}
