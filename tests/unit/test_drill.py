"""Fire drills with a fake cloud and broker: the derived spec, leases and reaping, the run's verdicts,
teardown on failure and interruption, history, notification and the schedule's units."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from drbootstrap.drill import reap as reap_module
from drbootstrap.drill import run as run_module
from drbootstrap.drill.history import DrillRecord, load_history, save_record, trend
from drbootstrap.drill.identity import DRILL_TAG, EXPIRES_TAG, drill_spec, new_identity
from drbootstrap.drill.lease import KEPT, DrillLease, all_leases
from drbootstrap.drill.notify import message, send, should_notify
from drbootstrap.drill.reap import reap_drills
from drbootstrap.drill.run import DrillInterrupted, DrillSettings, run_drill
from drbootstrap.drill.schedule import drill_units
from drbootstrap.errors import DrbError
from drbootstrap.executor import lifecycle
from drbootstrap.exit_status import ExitStatus
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.providers.local.subnets import pick_free_subnet
from drbootstrap.spec import parse_spec
from drbootstrap.spec.operations import NotifySpec
from tests.unit.executor_fakes import (
    SPEC,
    FakeAccess,
    FakeBroker,
    FakeCloud,
    FakeFleet,
    load_spec_text,
    make_context,
    make_provider,
)

DRILL_NETWORK = "10.250.7.0/24"


class RebootingFleet(FakeFleet):
    """The fake fleet, with agents whose process changes when they are rebooted (rpcutil inventory)."""

    def __init__(self, broker: FakeBroker, boots: dict[str, int], interrupt_at: str | None = None) -> None:
        super().__init__(broker)
        self.boots, self.interrupt_at = boots, interrupt_at

    def call(self, identity: str, agent: str, action: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self.interrupt_at == f"{identity} {action}":
            raise DrillInterrupted()
        if agent == "rpcutil" and action == "inventory":
            return {"pid": 100 + self.boots.get(identity, 0), "started": 1}
        if agent == "reboot":
            self.boots[identity] = self.boots.get(identity, 0) + 1
            return {"rebooting_in": data["delay"]}
        return super().call(identity, agent, action, data, timeout)


@pytest.fixture
def drill_world(monkeypatch, tmp_path):
    """run_drill over the fake cloud: every provider the drill builds (its own, production's, the
    teardown's) is the fake cloud's, and the drill's subnet is fixed."""
    spec = load_spec_text(monkeypatch)
    cloud = FakeCloud()
    broker, access, boots = FakeBroker(cloud), FakeAccess(), {}
    world = {"spec": spec, "cloud": cloud, "broker": broker, "access": access, "state": tmp_path, "interrupt_at": None}

    def provider(spec_: Any, paths: EnvironmentPaths, *args: Any, **kwargs: Any) -> Any:
        return make_provider(spec_, paths.state_dir, cloud)

    def context(spec_: Any, plan: Any, paths: EnvironmentPaths, *, options: Any, emit: Any) -> Any:
        ctx = make_context(spec_, paths.state_dir, cloud, broker, access, options=options)
        ctx.fleet_factory = lambda address: RebootingFleet(broker, boots, world["interrupt_at"])
        return ctx

    for module in (run_module, reap_module, lifecycle):
        monkeypatch.setattr(module, "provider_for", provider)
    monkeypatch.setattr(run_module, "build_context", context)
    monkeypatch.setattr("drbootstrap.providers.local.subnets.free_drill_network", lambda *a: DRILL_NETWORK)
    return world


def test_the_drill_spec_is_production_renamed_on_its_own_subnet_with_no_public_name(monkeypatch):
    monkeypatch.setenv("DRB_TEST_PSK", "x" * 32)
    monkeypatch.setenv("TSIG", "c2VjcmV0")
    spec = parse_spec(SPEC.replace("master: {hostname: controller, image: master}",
                                   "master: {hostname: controller, image: master, dynamic_dns: {server: 192.0.2.1, "
                                   "zone: example.org, tsig_key_name: k, tsig_secret: '${env:TSIG}'}}"))
    identity = new_identity(spec, now=1000.0, drill_id="abc123")
    derived = drill_spec(spec, identity, {"network": DRILL_NETWORK})
    assert identity.environment == "drill-demo-abc123" and derived.environment == identity.environment
    assert identity.production_environment == "demo"
    assert derived.provider.network == DRILL_NETWORK and spec.provider.network == "10.213.0.0/24"
    assert derived.master.dynamic_dns is None and derived.public_dns is None
    assert identity.node_tags == {DRILL_TAG: "abc123", EXPIRES_TAG: str(int(1000 + 3 * 30 * 60 + 3600))}
    long = parse_spec(SPEC.replace("environment: demo", "environment: " + "e" * 63))
    assert len(new_identity(long, drill_id="abc123").environment) == 63


def test_a_drill_subnet_is_deterministic_and_overlaps_nothing_taken():
    taken = [ipaddress.ip_network("10.213.0.0/24")]
    first = pick_free_subnet("abc123", 24, taken)
    assert first == pick_free_subnet("abc123", 24, taken)
    assert ipaddress.ip_network(first).subnet_of(ipaddress.ip_network("10.250.0.0/15"))
    moved = pick_free_subnet("abc123", 24, [*taken, ipaddress.ip_network(first)])
    assert moved != first and not ipaddress.ip_network(moved).overlaps(ipaddress.ip_network(first))
    everything = [ipaddress.ip_network("10.250.0.0/15")]
    with pytest.raises(DrbError, match="no free subnet"):
        pick_free_subnet("abc123", 24, everything)


def test_a_lease_is_reapable_when_expired_or_its_process_is_gone_but_not_while_it_runs(monkeypatch, tmp_path):
    spec = load_spec_text(monkeypatch)
    lease = DrillLease.for_this_process(new_identity(spec, now=1000.0, drill_id="aaaaaa"), {})
    assert lease.reapable(2000.0) is None  # this very process runs it
    assert "expired" in lease.reapable(lease.expires_at + 1)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lease.pid = int(done.stdout)  # a process that has exited
    assert "is gone" in lease.reapable(2000.0)
    lease.state = KEPT  # kept on purpose by the teardown policy: only its expiry reaps it
    assert lease.reapable(2000.0) is None
    lease.save(tmp_path)
    assert [found.drill_id for found in all_leases(tmp_path)] == ["aaaaaa"]
    assert os.stat(EnvironmentPaths(tmp_path, lease.environment).drill_lease).st_mode & 0o777 == 0o600


def test_a_passing_drill_rebooted_every_node_tore_down_and_left_production_alone(drill_world):
    world = drill_world
    record = run_drill(world["spec"], world["state"], settings=DrillSettings(steady_state_timeout=60))
    assert record.result == "passed", record.reasons
    assert record.rto_met and record.time_to_recovery_seconds is not None
    assert sorted(record.steady_state["rebooted"]) == ["controller", "db01", "mail01", "web01", "web02"]
    assert record.teardown["done"] and record.teardown["clean"] and len(record.teardown["before"]) == 6  # 5 + volume
    assert world["cloud"].list_nodes() == [] and world["cloud"].volumes == []
    assert not EnvironmentPaths(world["state"], record.drill_environment).root.exists()
    assert not EnvironmentPaths(world["state"], "demo").root.exists()  # production's files: never written
    assert record.network == DRILL_NETWORK and record.slowest_step is not None
    history = load_history(world["state"], "demo")
    assert [h.drill_id for h in history] == [record.drill_id]
    page = Path(history[0].report_html).read_text()
    assert "drill of demo" in page and f"Drill: PASSED (drill {record.drill_id} of demo)" in page
    assert "against the RTO target 1800 s: met" in page and "checks passed again" in page
    assert json.loads(Path(history[0].report_json).read_text())["drill"]["result"] == "passed"


def test_every_node_of_a_drill_carries_its_id_and_expiry(drill_world):
    world = drill_world
    world["spec"] = world["spec"].model_copy(update={"drill": world["spec"].drill.model_copy(
        update={"teardown": "never"})})
    record = run_drill(world["spec"], world["state"], settings=DrillSettings(steady_state_timeout=60))
    tags = [n.extra["tags"] for n in world["cloud"].list_nodes()]
    assert len(tags) == 5 and all(t[DRILL_TAG] == record.drill_id and int(t[EXPIRES_TAG]) > 0 for t in tags)
    assert all(t["drbootstrap:environment"] == record.drill_environment for t in tags)
    assert record.teardown == {"policy": "never", "done": False}
    leases = all_leases(world["state"])
    assert [lease.state for lease in leases] == [KEPT]
    assert reap_drills(world["spec"], world["state"]).reaped == []  # kept, not expired
    reaped = reap_drills(world["spec"], world["state"], now=leases[0].expires_at + 1)
    assert [t.environment for t in reaped.reaped] == [record.drill_environment] and reaped.reaped[0].clean
    assert world["cloud"].list_nodes() == [] and all_leases(world["state"]) == []


def test_a_failed_check_fails_the_drill_and_on_success_keeps_it_for_a_look(drill_world):
    world = drill_world
    world["access"].command_status = 1  # db01's check fails
    record = run_drill(world["spec"], world["state"], settings=DrillSettings(steady_state_timeout=60))
    assert record.result == "failed" and record.checks_after_recovery is False
    assert any("db01" in reason for reason in record.reasons) and record.steady_state is None
    assert record.teardown == {"policy": "on_success", "done": False} and world["cloud"].list_nodes()


def test_a_missed_rto_target_fails_a_drill_whose_checks_pass(drill_world, monkeypatch):
    world = drill_world
    world["spec"] = world["spec"].model_copy(update={"drill": world["spec"].drill.model_copy(
        update={"rto_minutes": 0.000001, "teardown": "always"})})
    record = run_drill(world["spec"], world["state"], settings=DrillSettings(steady_state_timeout=60))
    assert record.result == "failed" and record.rto_met is False and record.checks_after_recovery is True
    assert any("missed the RTO target" in reason for reason in record.reasons)
    assert record.teardown["done"] and world["cloud"].list_nodes() == []


def test_an_interrupted_drill_tears_down_then_lets_the_interruption_go_on(drill_world):
    world = drill_world
    world["interrupt_at"] = "db01.demo.internal runonce"
    with pytest.raises(DrillInterrupted):
        run_drill(world["spec"], world["state"], settings=DrillSettings(steady_state_timeout=60))
    assert world["cloud"].list_nodes() == []
    (record,) = load_history(world["state"], "demo")
    assert record.result == "interrupted" and record.teardown["done"] and record.teardown["clean"]


def test_a_drill_whose_process_died_is_reaped_at_the_next_drills_start(drill_world):
    world = drill_world
    spec = world["spec"]
    identity = new_identity(spec, drill_id="dead00")
    lease = DrillLease.for_this_process(identity, {"network": DRILL_NETWORK})
    lease.pid, lease.process_start = 1, "not-init"  # the process that made it is gone
    lease.save(world["state"])
    derived = drill_spec(spec, identity, lease.provider_changes)
    make_provider(derived, world["state"], world["cloud"])  # its nodes, as a killed drill left them
    world["cloud"].create_node("db01", "small", "worker", ex_metadata={
        "drbootstrap:environment": derived.environment, "drbootstrap:hostname": "db01", **identity.node_tags})
    record = run_drill(spec, world["state"], settings=DrillSettings(steady_state_timeout=60))
    assert [r["environment"] for r in record.reaped_at_start] == [derived.environment]
    assert record.reaped_at_start[0]["before"] == ["node db01 (i-1)"] and record.reaped_at_start[0]["after"] == []
    assert "is gone" in record.reaped_at_start[0]["reason"]


def test_nodes_tagged_as_a_drills_with_no_lease_are_swept_once_their_expiry_passed(drill_world):
    world = drill_world
    tags = {"drbootstrap:environment": "drill-demo-lost00", "drbootstrap:hostname": "web01", DRILL_TAG: "lost00"}
    world["cloud"].create_node("web01", "small", "worker", ex_metadata={**tags, EXPIRES_TAG: "9999999999"})
    assert reap_drills(world["spec"], world["state"]).reaped == []
    world["cloud"].create_node("web02", "small", "worker", ex_metadata={**tags, EXPIRES_TAG: "1"})
    (swept,) = reap_drills(world["spec"], world["state"]).reaped
    assert swept.before == ["node web01 (i-2)"] and swept.clean
    assert [n.name for n in world["cloud"].list_nodes()] == ["web01"]


def test_history_records_round_trip_with_a_schema_version_and_a_trend(tmp_path):
    for index, seconds in enumerate([300.0, 320.0, 200.0, 180.0]):
        save_record(DrillRecord(f"d{index}", "demo", f"drill-demo-d{index}", 1000.0 + index * 86400,
                                result="passed", time_to_recovery_seconds=seconds, rto_target_seconds=900,
                                rto_met=True), tmp_path)
    records = load_history(tmp_path, "demo")
    assert [r.drill_id for r in records] == ["d0", "d1", "d2", "d3"]
    assert trend(records).startswith("time to recovery improving (310 s -> 190 s")
    assert trend(records).endswith("4 of 4 met the RTO target")
    raw = json.loads(next((tmp_path / "drill-history" / "demo").glob("*/drill.json")).read_text())
    assert raw["schema_version"] == 1


class _Receiver:
    def __enter__(self) -> _Receiver:
        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_notification_goes_to_the_command_and_the_webhook_with_the_figures_only(tmp_path):
    record = DrillRecord("abc123", "demo", "drill-demo-abc123", 1000.0, result="failed",
                         reasons=["db01: failed at checks"], rto_target_seconds=900)
    out = tmp_path / "notified.json"
    with _Receiver() as receiver:
        notify = NotifySpec(command=f"cat > {out}", webhook=receiver.url, timeout_seconds=5)
        lines = send(notify, record)
    assert lines == ["command cat: exit 0", f"webhook {receiver.url}: HTTP 200"]
    assert json.loads(out.read_text()) == receiver.bodies[0] == message(record)
    assert receiver.bodies[0]["event"] == "drill_failed" and receiver.bodies[0]["schema_version"] == 1
    assert should_notify(notify, record)
    record.result, record.rto_met = "passed", True
    assert not should_notify(notify, record)
    assert should_notify(notify.model_copy(update={"on_success": True}), record)


def test_an_unreachable_webhook_is_reported_within_its_timeout_not_raised():
    notify = NotifySpec(webhook="http://127.0.0.1:9/hook", timeout_seconds=1)
    (line,) = send(notify, DrillRecord("abc123", "demo", "drill-demo-abc123", 1000.0))
    assert line.startswith("webhook http://127.0.0.1:9/hook: ")


def test_the_schedule_is_a_oneshot_service_and_a_persistent_timer(tmp_path):
    units = drill_units("demo", tmp_path / "env.yaml", "Sun *-*-* 03:00:00", Path("/usr/bin/drbootstrap"),
                        Path("/var/lib/drb"))
    assert units.name == "drbootstrap-drill-demo"
    assert f"ExecStart=/usr/bin/drbootstrap drill {tmp_path / 'env.yaml'} --plain" in units.service
    assert "Type=oneshot" in units.service and "Environment=DRB_STATE_DIR=/var/lib/drb" in units.service
    assert "OnCalendar=Sun *-*-* 03:00:00" in units.timer and "Persistent=true" in units.timer
    with pytest.raises(DrbError, match="calendar"):
        drill_units("demo", tmp_path / "env.yaml", "weekly\nExecStart=/bin/evil", Path("/usr/bin/drbootstrap"))


def test_drill_failed_is_exit_14():
    from drbootstrap.errors import DrillFailed

    assert ExitStatus.DRILL_FAILED == 14 and DrillFailed("x").exit_status == 14


def test_the_cli_prints_the_schedule_and_an_empty_history(cli, tmp_path, monkeypatch):
    spec_file = tmp_path / "env.yaml"
    spec_file.write_text(SPEC.replace('security: {psk: "${env:DRB_TEST_PSK}"}\n', ""))
    printed = cli("schedule", str(spec_file), "--every", "weekly", "--print")
    assert printed.exit_code == 0 and "[Timer]" in printed.stdout and "drill " in printed.stdout
    shown = cli("history", str(spec_file), "--state-dir", str(tmp_path / "state"), "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["drills"] == []


@pytest.mark.parametrize(("result", "status"), [("passed", 0), ("failed", 14)])
def test_the_drill_command_exits_by_the_drills_result_and_prints_why(cli, tmp_path, monkeypatch, result, status):
    import signal

    spec_file = tmp_path / "env.yaml"
    spec_file.write_text(SPEC.replace('security: {psk: "${env:DRB_TEST_PSK}"}\n', ""))
    reasons = [] if result == "passed" else ["mail01: check 1 failed"]
    record = DrillRecord("abc123", "demo", "drill-demo-abc123", 1000.0, result=result, rto_target_seconds=1800,
                         time_to_recovery_seconds=95.0, reasons=reasons)
    monkeypatch.setattr(run_module, "run_drill", lambda spec, state, emit: record)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        done = cli("drill", str(spec_file), "--state-dir", str(tmp_path / "state"), "--plain")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert done.exit_code == status
    assert f"demo: drill abc123 {result.upper()}: time to recovery 95 s (target 1800 s)" in done.stdout
    assert ("mail01: check 1 failed" in done.stdout) == (result == "failed")


def test_a_drill_of_an_s3_environment_holds_its_lease_and_sends_its_journal_and_report(drill_world, monkeypatch):
    from drbootstrap.state.lease import read_lease
    from tests.unit.executor_fakes import SPEC as FAKES_SPEC
    from tests.unit.state_fakes import S3_STATE, STATE_KEY, use_memory_bucket

    monkeypatch.setenv("DRB_TEST_STATE_KEY", STATE_KEY)
    bucket = use_memory_bucket(monkeypatch)
    holders = []
    original = run_module.run_up

    def run_up_noting_the_holder(ctx):
        from drbootstrap.state.remote import RemoteState

        holders.append(read_lease(RemoteState(ctx.spec.state, ctx.journal.paths).store).record.command)
        return original(ctx)

    monkeypatch.setattr(run_module, "run_up", run_up_noting_the_holder)
    spec = load_spec_text(monkeypatch, FAKES_SPEC + S3_STATE)
    record = run_drill(spec, drill_world["state"], settings=DrillSettings(steady_state_timeout=60))

    assert record.result == "passed", record.reasons
    assert holders == ["drill"]
    root = f"drbootstrap/{record.drill_environment}/"
    assert root + "journal.json" in bucket.objects
    assert any(k.startswith(root + "reports/") and k.endswith("report.json") for k in bucket.objects)
    lease = json.loads(bucket.objects[root + "lease.json"].body)
    assert (lease["command"], lease["generation"], lease["released"]) == ("down", 2, True)  # the teardown's, after
