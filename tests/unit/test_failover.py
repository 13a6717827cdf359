"""The failover runner with a fake zone, a fake `up` and fake sites: phases journaled in order, DNS
switched only after verification and never twice, exit 15 with records untouched, resume after a
crash, no switch back by accident, fencing reported when the old site cannot be reached."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from libcloud.compute.types import NodeState

from drbootstrap.errors import NotSwitched, ProviderError
from drbootstrap.executor import events
from drbootstrap.executor.run import NodeOutcome, RunResult
from drbootstrap.exit_status import ExitStatus
from drbootstrap.failover import dry_run as failover_dry_run
from drbootstrap.failover import public_dns
from drbootstrap.failover import run as failover_run
from drbootstrap.failover.public_dns import RecordState
from drbootstrap.failover.run import SwitchUnfinished, run_switch
from drbootstrap.failover.sites import UnknownSite, sites_of, spec_at
from drbootstrap.journal import Journal
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.spec import load_spec

SECRET = base64.b64encode(b"s" * 32).decode()
SPEC = """
environment: shop
domain: shop.internal
provider: {name: local, network: 10.213.0.0/24}
nodes:
  - {role: app, hostnames: [app01]}
sites:
  - {name: b, provider: {name: local, network: 10.214.0.0/24}}
public_dns:
  provider: rfc2136
  zone: shop.test
  server: 127.0.0.1
  port: 5353
  tsig_key_name: update-key
  credentials: {tsig_secret: "${file:tsig.secret}"}
  records:
    - {name: www, targets: {primary: 192.0.2.10, b: 198.51.100.10}}
FENCE
"""


@dataclass
class FakeZone:
    values: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"www.shop.test.": ("192.0.2.10",)})
    updates: int = 0
    refuse_key: bool = False

    def check_key(self, public: public_dns.PublicDns) -> int:
        if self.refuse_key:
            raise public_dns.rfc2136.DnsKeyRefused("refused the key")
        return self.updates

    def read_records(self, public: public_dns.PublicDns) -> list[RecordState]:
        return [RecordState(public.fqdn(r), r.type, self.values.get(public.fqdn(r), ()), 300)
                for r in public.records]

    def switch_record(self, public: public_dns.PublicDns, record, target: str) -> None:
        self.values[public.fqdn(record)] = (target,)
        self.updates += 1


@dataclass
class FakeNode:
    name: str
    state: NodeState = NodeState.RUNNING


@dataclass
class FakeProvider:
    nodes_by_name: dict[str, FakeNode]
    unreachable: bool = False

    def nodes(self) -> dict[str, FakeNode]:
        if self.unreachable:
            raise ProviderError("cannot reach the cloud at site primary")
        return self.nodes_by_name

    def stop_node(self, node: FakeNode) -> None:
        node.state = NodeState.STOPPED

    def destroy_environment(self, owned_ids: frozenset[str] = frozenset()):
        from drbootstrap.providers.values import Teardown

        destroyed = sorted(self.nodes_by_name)
        self.nodes_by_name.clear()
        return Teardown(destroyed=destroyed)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "tsig.secret").write_text(SECRET + "\n")
    zone = FakeZone()
    for name in ("check_key", "read_records", "switch_record"):
        monkeypatch.setattr(public_dns, name, getattr(zone, name))
    sites = {"primary": FakeProvider({"controller": FakeNode("controller"), "app01": FakeNode("app01")}),
             "b": FakeProvider({})}
    for module in (failover_run, failover_dry_run):
        monkeypatch.setattr(module, "provider_at", lambda spec, state_dir, site, emit=None: sites[site.name])
    ups: list[str] = []
    dns_at_up: list[tuple[str, ...]] = []
    failing: dict[str, str] = {}

    def fake_up(spec, state_dir, *, options, emit, paths, within=None):
        ups.append(paths.site)
        dns_at_up.append(zone.values["www.shop.test."])
        assert "checks" in options.redo  # the checks run again at the target
        result = RunResult("shop", 0.0, 1.0)
        for host in ("controller", "app01"):
            step = failing.get(host)
            state = events.FAILED if step else events.DONE
            result.outcomes[host] = NodeOutcome(host, "app", state, step or "", "check 1 failed" if step else "")
        sites[paths.site].nodes_by_name.update({"controller": FakeNode("controller"), "app01": FakeNode("app01")})
        return result, None

    import drbootstrap.executor.lifecycle as lifecycle

    monkeypatch.setattr(lifecycle, "up", fake_up)

    def load(fence: str = "stop"):
        spec_file = tmp_path / "env.yaml"
        spec_file.write_text(SPEC.replace("FENCE", f"failover: {{fence: {fence}}}"))
        return load_spec(spec_file)

    return type("World", (), {"zone": zone, "sites": sites, "ups": ups, "failing": failing, "load": load,
                              "dns_at_up": dns_at_up, "state": tmp_path / "state"})


def _journal(world) -> dict:
    return json.loads(EnvironmentPaths(world.state, "shop").failover_journal.read_text())


def test_failover_switches_after_verification_and_fences_the_old_site(world):
    result = run_switch(world.load(), world.state, "b")
    assert world.ups == ["b"] and world.zone.updates == 1
    assert world.dns_at_up == [("192.0.2.10",)]  # the record still pointed at the old site during `up`
    assert world.zone.values["www.shop.test."] == ("198.51.100.10",)
    switch = result.switch
    assert list(switch.phases) == ["target_up", "verified", "dns_switched", "fenced"]
    assert switch.records_before[0].values == ("192.0.2.10",) and switch.old_ttl == 300
    assert switch.clients_moved_by == switch.switch_time + 300
    assert {n.state for n in world.sites["primary"].nodes_by_name.values()} == {NodeState.STOPPED}
    assert _journal(world)["active_site"] == "b" and _journal(world)["current"] is None
    report = (EnvironmentPaths(world.state, "shop").failover_report_markdown).read_text()
    assert "192.0.2.10" in report and "198.51.100.10" in report and SECRET not in report
    phases = [line.split(" | ")[0].lstrip("| ") for line in report.splitlines() if line.startswith("| ")
              and line.split(" | ")[0].lstrip("| ") in ("target_up", "verified", "dns_switched", "fenced")]
    assert phases == ["target_up", "verified", "dns_switched", "fenced"]


def test_failed_checks_at_the_target_exit_15_with_records_untouched_and_a_rerun_resumes(world):
    world.failing["app01"] = "checks"
    with pytest.raises(NotSwitched) as refused:
        run_switch(world.load(), world.state, "b")
    assert refused.value.exit_status == ExitStatus.NOT_SWITCHED == 15
    assert world.zone.updates == 0 and world.zone.values["www.shop.test."] == ("192.0.2.10",)
    assert "target_up" in _journal(world)["current"]["phases"]
    assert "verified" not in _journal(world)["current"]["phases"]
    world.failing.clear()
    run_switch(world.load(), world.state, "b")
    assert world.zone.updates == 1 and world.ups == ["b", "b"]


def test_a_run_killed_after_the_switch_resumes_without_a_second_update(world, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after dns_switched was journaled

    monkeypatch.setattr(failover_run, "fence_site", crash)
    with pytest.raises(KeyboardInterrupt):
        run_switch(world.load(), world.state, "b")
    assert world.zone.updates == 1
    monkeypatch.undo()
    # undo removed the fakes too: put the zone and sites back
    for name in ("check_key", "read_records", "switch_record"):
        monkeypatch.setattr(public_dns, name, getattr(world.zone, name))
    monkeypatch.setattr(failover_run, "provider_at", lambda spec, state_dir, site, emit=None: world.sites[site.name])
    result = run_switch(world.load(), world.state, "b")
    assert world.zone.updates == 1 and world.ups == ["b"]  # neither up nor DNS again
    assert result.switch.fence.state == "fenced"


def test_an_update_that_reached_the_server_before_the_crash_is_not_sent_again(world):
    world.zone.values["www.shop.test."] = ("198.51.100.10",)  # the server already holds the target
    result = run_switch(world.load(), world.state, "b")
    assert world.zone.updates == 0 and result.switch.dns_updates == 0


def test_a_switched_but_unfinished_failover_is_never_switched_back(world, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(failover_run, "fence_site", crash)
    with pytest.raises(KeyboardInterrupt):
        run_switch(world.load(), world.state, "b")
    with pytest.raises(SwitchUnfinished, match="failover to b is unfinished"):
        run_switch(world.load(), world.state, "primary", command="failback")
    assert world.zone.updates == 1 and world.zone.values["www.shop.test."] == ("198.51.100.10",)


def test_a_failover_that_never_moved_dns_can_be_abandoned_by_staying_at_the_active_site(world):
    world.failing["app01"] = "checks"
    with pytest.raises(NotSwitched):
        run_switch(world.load(), world.state, "b")
    result = run_switch(world.load(), world.state, "primary", command="failback")
    assert result.already_active and world.zone.updates == 0
    journal = _journal(world)
    assert journal["current"] is None and journal["history"][0]["verification"].startswith("abandoned (failed:")


def test_switching_to_the_active_site_changes_nothing(world):
    result = run_switch(world.load(), world.state, "primary")
    assert result.already_active and world.ups == [] and world.zone.updates == 0


def test_an_unreachable_old_site_is_reported_not_fenced_and_the_failover_goes_on(world):
    world.sites["primary"].unreachable = True
    result = run_switch(world.load(), world.state, "b")
    assert result.switch.fence.state == "unreachable"
    assert "could not be fenced: cannot reach the cloud" in result.switch.fence.detail
    assert world.zone.updates == 1 and _journal(world)["active_site"] == "b"


def test_fence_none_leaves_the_old_site_running(world):
    result = run_switch(world.load(fence="none"), world.state, "b")
    assert result.switch.fence.state == "none"
    assert {n.state for n in world.sites["primary"].nodes_by_name.values()} == {NodeState.RUNNING}


def test_bad_input_is_refused_before_anything_changes(world):
    with pytest.raises(UnknownSite, match="--to elsewhere: no site of that name"):
        run_switch(world.load(), world.state, "elsewhere")
    world.zone.refuse_key = True
    with pytest.raises(public_dns.rfc2136.DnsKeyRefused):
        run_switch(world.load(), world.state, "b")
    assert world.ups == [] and world.zone.updates == 0
    assert not EnvironmentPaths(world.state, "shop").failover_journal.exists()


def test_dry_run_lists_each_site_and_record_and_changes_nothing(world, monkeypatch):
    result = run_switch(world.load(), world.state, "b", dry_run=True)
    text = "\n".join(result.planned)
    assert "site b: `up` would work on 2 of 2 node(s)" in text
    assert "www.shop.test. A 192.0.2.10 (TTL 300 s) -> 198.51.100.10" in text
    assert "site primary: 2 running node(s) would be stopped" in text
    assert world.ups == [] and world.zone.updates == 0
    assert not EnvironmentPaths(world.state, "shop").failover_journal.exists()


def test_sites_name_the_primary_and_each_site_has_its_own_files_and_cloud_name(world):
    spec = world.load()
    assert list(sites_of(spec)) == ["primary", "b"]
    at_b = spec_at(spec, sites_of(spec)["b"])
    assert str(at_b.provider.network) == "10.214.0.0/24" and at_b.source_path == spec.source_path
    paths = EnvironmentPaths(world.state, "shop")
    assert paths.at_site("b").root == paths.root / "sites" / "b"
    assert (paths.cloud_environment, paths.at_site("b").cloud_environment) == ("shop", "shop.b")
    public = public_dns.public_dns_from_spec(spec)
    assert SECRET not in repr(public)


def test_fence_destroy_destroys_the_old_site_and_a_failback_rebuilds_a_stopped_site(world):
    result = run_switch(world.load(fence="destroy"), world.state, "b")
    assert result.switch.fence.detail == "destroyed app01, controller"
    assert world.sites["primary"].nodes_by_name == {}
    back = run_switch(world.load(), world.state, "primary", command="failback")
    assert world.ups == ["b", "primary"] and back.switch.command == "failback"
    assert world.zone.values["www.shop.test."] == ("192.0.2.10",) and world.zone.updates == 2
    assert {n.state for n in world.sites["b"].nodes_by_name.values()} == {NodeState.STOPPED}
    again = run_switch(world.load(), world.state, "b")
    assert world.ups == ["b", "primary", "b"] and again.switch.fence.state == "fenced"
    assert world.zone.updates == 3  # b, whose stopped nodes were rebuilt, is active again


def test_up_status_and_down_take_a_site(world):
    from drbootstrap.failover.sites import at_site

    spec = world.load()
    at_b, paths = at_site(spec, world.state, "b")
    assert paths.site == "b" and str(at_b.provider.network) == "10.214.0.0/24"
    assert at_site(spec, world.state, None)[1].site == "primary"
    with pytest.raises(UnknownSite, match="--site c: no site of that name"):
        at_site(spec, world.state, "c")


def test_a_failover_holds_an_s3_environments_lease_and_runs_up_and_fencing_under_it(world, monkeypatch):
    from drbootstrap.environment_lock import EnvironmentBusy
    from drbootstrap.state import hold_state
    from drbootstrap.state.lease import read_lease
    from drbootstrap.state.remote import RemoteState
    from tests.unit.state_fakes import S3_STATE, STATE_KEY, use_memory_bucket

    monkeypatch.setenv("DRB_TEST_STATE_KEY", STATE_KEY)
    bucket = use_memory_bucket(monkeypatch)
    spec = load_spec(_with_state(world, S3_STATE))
    paths = EnvironmentPaths(world.state, "shop")
    seen = []

    def up_under_the_failover(spec_, state_dir, *, options, emit, paths, within=None):
        store = RemoteState(spec.state, paths).store
        seen.append((paths.site, read_lease(store).record.command, within is not None))
        with pytest.raises(EnvironmentBusy, match=r"`failover` .* is changing it now .*; up refused"):
            with hold_state(spec, paths.at_site("primary"), "up"):
                pass  # an `up` of another operator, meanwhile
        with hold_state(spec_, paths, "up", within=within) as session:  # what the real `up` does
            journal = Journal.at(paths)
            session.attach(journal)
            journal.flush()
        world.sites[paths.site].nodes_by_name.update({"controller": FakeNode("controller"), "app01": FakeNode("app01")})
        result = RunResult("shop", 0.0, 1.0)
        for host in ("controller", "app01"):
            result.outcomes[host] = NodeOutcome(host, "app", events.DONE, "", "")
        return result, None

    import drbootstrap.executor.lifecycle as lifecycle

    monkeypatch.setattr(lifecycle, "up", up_under_the_failover)
    result = run_switch(spec, world.state, "b")

    assert result.switch.phases.keys() == {"target_up", "verified", "dns_switched", "fenced"}
    assert seen == [("b", "failover", True)]
    lease = read_lease(RemoteState(spec.state, paths).store)
    assert lease.record.command == "failover" and lease.record.released  # released when it finished
    assert "drbootstrap/shop/sites/b/journal.json" in bucket.objects  # site b's journal, apart from primary's
    with hold_state(spec, paths, "up"):  # free again
        pass


def test_a_second_failover_of_an_s3_environment_is_refused_naming_the_holder(world, monkeypatch):
    from drbootstrap.environment_lock import EnvironmentBusy
    from drbootstrap.state import hold_state
    from tests.unit.state_fakes import S3_STATE, STATE_KEY, use_memory_bucket

    monkeypatch.setenv("DRB_TEST_STATE_KEY", STATE_KEY)
    use_memory_bucket(monkeypatch)
    spec = load_spec(_with_state(world, S3_STATE))
    with hold_state(spec, EnvironmentPaths(world.state, "shop"), "down"):
        with pytest.raises(EnvironmentBusy, match=r"`down` .* is changing it now .*; failover refused") as refused:
            run_switch(spec, world.state, "b")
    assert refused.value.exit_status is ExitStatus.BUSY
    assert world.ups == [] and world.zone.updates == 0


def _with_state(world, block: str) -> Path:
    spec_file = world.state.parent / "env-s3.yaml"
    spec_file.write_text(SPEC.replace("FENCE", "failover: {fence: stop}\n" + block))
    return spec_file
