"""The executor with fake cloud, broker and nodes: order, resume, partial failure, --redo, --only."""

from __future__ import annotations

import json
import threading
import time

import pytest

from drbootstrap.errors import WaitTimeoutError
from drbootstrap.executor import UpOptions, run_up
from drbootstrap.executor.lifecycle import incomplete_hostnames
from drbootstrap.executor.run import dependencies
from drbootstrap.exit_status import ExitStatus
from drbootstrap.journal import Journal, Step, StepState
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import build_plan
from tests.unit.executor_fakes import (  # noqa: F401 - world is a fixture
    ALL,
    PSK,
    Crash,
    FakeAccess,
    FakeBroker,
    FakeCloud,
    load_spec_text,
    make_context,
    make_provider,
    world,
)


def test_up_builds_master_then_every_worker_each_launched_once(world):
    spec, state, cloud, broker, access = world
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.exit_status is ExitStatus.OK
    assert cloud.live_hostnames() == sorted(ALL)
    assert set(cloud.creates.values()) == {1}
    journal = Journal.open(state, "demo")
    assert all(rec.state is StepState.DONE for node in journal.data.nodes.values() for rec in node.steps.values())
    assert journal.data.nodes["web01"].is_done(Step.CHECKS)
    assert ("db01", "/srv/db") in cloud.attached


def test_a_dependant_puppet_run_waits_for_its_dependencies_but_not_its_launch(world):
    spec, state, cloud, broker, access = world
    events = []
    run_up(make_context(spec, state, cloud, broker, access, events=events))
    db_done = next(i for i, e in enumerate(events) if e.node == "db01" and e.step == "" and e.state == "done")
    web_puppet = min(i for i, e in enumerate(events)
                     if e.node.startswith("web") and e.step == "puppet_sign" and e.state == "running")
    web_launch = min(i for i, e in enumerate(events)
                     if e.node.startswith("web") and e.step == "launch" and e.state == "running")
    assert web_launch < db_done < web_puppet
    assert dependencies(build_plan(spec).waves[0] + build_plan(spec).waves[1])["web01"] == {"db01"}


def test_workers_launch_and_take_names_while_the_puppet_ca_is_still_starting(world):
    spec, state, cloud, broker, access = world
    events = []
    ctx = make_context(spec, state, cloud, broker, access, events=events)
    ca_started = threading.Event()
    launched_before_ca: list[str] = []

    def slow_ca_probe(address, spec, deadline, *, puppet_ca=False):
        if not puppet_ca:
            return "dns, broker ready"
        ca_started.set()
        # Every worker must reach its Puppet gate while the CA is not ready yet.
        for _ in range(500):
            waiting = {e.node for e in list(events) if e.state == "waiting" and e.step == "puppet_sign"}
            if waiting >= {"db01", "web01", "web02", "mail01"}:
                break
            time.sleep(0.01)
        launched_before_ca.extend(sorted({e.node for e in list(events) if e.step == "discover" and e.state == "done"}))
        return "puppet-ca ready"

    ctx.probe_services = slow_ca_probe
    result = run_up(ctx)
    assert result.exit_status is ExitStatus.OK
    assert ca_started.is_set()
    assert set(launched_before_ca) >= {"db01", "web01", "web02", "mail01"}
    ca_done = next(i for i, e in enumerate(events) if e.step == "puppet_ca" and e.state == "done")
    first_sign = min(i for i, e in enumerate(events) if e.step == "puppet_sign" and e.state == "running")
    assert ca_done < first_sign


def test_a_puppet_ca_that_never_answers_blocks_workers_before_puppet_only(world):
    spec, state, cloud, broker, access = world
    ctx = make_context(spec, state, cloud, broker, access)

    def dead_ca(address, spec, deadline, *, puppet_ca=False):
        if puppet_ca:
            raise WaitTimeoutError("master 10.0.0.1 not ready: puppet-ca: connection refused")
        return "dns, broker ready"

    ctx.probe_services = dead_ca
    result = run_up(ctx)
    assert result.exit_status is ExitStatus.PARTIAL
    assert result.outcomes["controller"].step == "puppet_ca"
    web = result.outcomes["web01"]
    assert (web.state, web.step) == ("blocked", "puppet_sign")
    assert "waits for controller" in web.reason
    journal = Journal.open(state, "demo")
    assert journal.data.nodes["web01"].is_done(Step.DISCOVER)
    assert Step.PUPPET_SIGN not in journal.data.nodes["web01"].steps


def test_names_are_registered_in_the_master_dns_before_puppet(world):
    spec, state, cloud, broker, access = world
    run_up(make_context(spec, state, cloud, broker, access))
    assert broker.calls[("controller.demo.internal", "dns", "add")] == 4
    order = [action for identity, action in broker.order if identity == "db01.demo.internal"]
    assert order == ["runonce", "enable"]
    assert set(access.armed) == {"db01.demo.internal", "web01.demo.internal", "web02.demo.internal",
                                 "mail01.demo.internal"}


def test_resume_after_crash_mid_launch_finds_the_node_by_token_and_launches_nothing_twice(world):
    spec, state, cloud, broker, access = world
    broker.crash_at = ("db01.demo.internal", "runonce")
    with pytest.raises(Crash):
        run_up(make_context(spec, state, cloud, broker, access))
    journal = Journal.open(state, "demo")
    assert journal.data.nodes["db01"].steps[Step.PUPPET_RUN].state is StepState.RUNNING
    broker.crash_at = None
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.exit_status is ExitStatus.OK
    assert cloud.live_hostnames() == sorted(ALL)
    assert set(cloud.creates.values()) == {1}
    # completed steps are not repeated: one DNS registration per worker across both runs
    assert broker.calls[("controller.demo.internal", "dns", "add")] == 4
    assert broker.calls[("db01.demo.internal", "puppet", "runonce")] == 2  # the interrupted one ran again


def test_launch_whose_journal_entry_was_lost_is_found_by_client_token(world):
    spec, state, cloud, broker, access = world
    run_up(make_context(spec, state, cloud, broker, access))
    # simulate a crash between create_node and the journal write: the journal knows nothing of db01
    journal = Journal.open(state, "demo")
    journal.data.nodes.pop("db01")
    journal.flush()
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.exit_status is ExitStatus.OK
    assert cloud.creates["db01"] == 1


def test_a_node_that_fails_to_boot_stops_only_itself_and_its_dependants(world):
    spec, state, cloud, broker, access = world
    cloud.fail_boot.add("db01")
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.exit_status is ExitStatus.PARTIAL
    states = {h: o.state for h, o in result.outcomes.items()}
    assert states == {"controller": "done", "db01": "failed", "web01": "blocked", "web02": "blocked",
                      "mail01": "done"}
    failure = result.outcomes["db01"]
    assert failure.step == "boot" and "failed to boot" in failure.reason and "exit 1" in failure.log_tail
    assert "db01" in result.outcomes["web01"].reason


def test_only_failed_after_fixing_the_image_replaces_the_node_and_completes(world):
    spec, state, cloud, broker, access = world
    cloud.fail_boot.add("db01")
    run_up(make_context(spec, state, cloud, broker, access))
    cloud.fail_boot.clear()
    only = incomplete_hostnames(build_plan(spec), Journal.open(state, "demo"))
    assert only == {"db01", "web01", "web02"}
    result = run_up(make_context(spec, state, cloud, broker, access, options=UpOptions(only=frozenset(only))))
    assert result.exit_status is ExitStatus.OK
    assert cloud.destroyed == ["db01"] and cloud.creates["db01"] == 2
    assert cloud.live_hostnames() == sorted(ALL)
    assert cloud.creates["mail01"] == 1


def test_puppet_failure_is_reported_with_its_output(world):
    spec, state, cloud, broker, access = world
    broker.fail_puppet.add("mail01.demo.internal")
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.exit_status is ExitStatus.PARTIAL
    failure = result.outcomes["mail01"]
    assert failure.step == "puppet_run" and "role::nope" in failure.log_tail
    assert [o.hostname for o in result.failed] == ["mail01"]


def test_failed_check_fails_the_node_clearly(world):
    spec, state, cloud, broker, access = world
    access.command_status = 1
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.outcomes["db01"].step == "checks"
    assert "test -f /srv/db/ready" in result.outcomes["db01"].reason


def test_rerun_of_a_complete_environment_repeats_nothing_unless_redo_asks(world):
    spec, state, cloud, broker, access = world
    run_up(make_context(spec, state, cloud, broker, access))
    events = []
    run_up(make_context(spec, state, cloud, broker, access, events=events))
    assert {e.state for e in events if e.step} <= {"skipped"}
    assert broker.calls[("web01.demo.internal", "puppet", "runonce")] == 1
    run_up(make_context(spec, state, cloud, broker, access, options=UpOptions(redo=frozenset({Step.PUPPET_RUN}))))
    assert broker.calls[("web01.demo.internal", "puppet", "runonce")] == 2
    assert broker.calls[("controller.demo.internal", "dns", "add")] == 4
    assert set(cloud.creates.values()) == {1}


def test_node_lost_from_the_cloud_is_launched_again_with_a_new_generation(world):
    spec, state, cloud, broker, access = world
    run_up(make_context(spec, state, cloud, broker, access))
    lost = next(n for n in cloud.list_nodes() if n.name == "mail01")
    cloud.destroy_node(lost)
    run_up(make_context(spec, state, cloud, broker, access))
    assert cloud.creates["mail01"] == 2
    assert Journal.open(state, "demo").data.nodes["mail01"].generation == 1
    assert cloud.live_hostnames() == sorted(ALL)


def test_master_failure_blocks_every_worker(world):
    spec, state, cloud, broker, access = world
    cloud.fail_boot.add("controller")
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.outcomes["controller"].state == "failed"
    assert all(result.outcomes[h].state == "blocked" for h in ALL[1:])
    assert cloud.live_hostnames() == ["controller"]


def test_the_psk_never_reaches_the_journal_or_the_events(world):
    spec, state, cloud, broker, access = world
    events = []
    run_up(make_context(spec, state, cloud, broker, access, events=events))
    assert PSK not in EnvironmentPaths(state, "demo").journal.read_text()
    assert PSK not in json.dumps([e.to_dict() for e in events])
    # it does reach the nodes: their user-data carries it as the agent key
    assert all(PSK in n.extra["user_data"] for n in cloud.list_nodes())


def test_worker_that_booted_under_its_cloud_name_is_rebooted_through_its_agent_to_take_its_name(world):
    spec, state, cloud, broker, access = world
    broker.named_at_boot = False
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.exit_status is ExitStatus.OK
    reboots = [identity for (identity, agent, action) in broker.calls if agent == "reboot"]
    assert len(reboots) == 4 and all(identity.startswith("ip-") for identity in reboots)
    detail = Journal.open(state, "demo").data.nodes["db01"].steps[Step.TAKE_NAME].detail
    assert detail.startswith("renamed from ip-") and "by reboot" in detail


def test_generated_psk_is_made_once_and_private(monkeypatch, tmp_path):
    from drbootstrap.executor.secrets import load_or_create_psk
    from tests.unit.executor_fakes import SPEC

    spec = load_spec_text(monkeypatch, SPEC.replace('security: {psk: "${env:DRB_TEST_PSK}"}\n', ""))
    first = load_or_create_psk(spec, tmp_path)
    assert load_or_create_psk(spec, tmp_path) == first and len(first) >= 32
    assert oct(EnvironmentPaths(tmp_path, "demo").psk.stat().st_mode & 0o777) == "0o600"


def test_down_destroys_journal_and_tagged_orphans_keeps_generations_and_is_idempotent(world, monkeypatch):
    from drbootstrap.executor import lifecycle

    spec, state, cloud, broker, access = world
    run_up(make_context(spec, state, cloud, broker, access))
    orphan = cloud.create_node("web09", None, None, ex_metadata={"drbootstrap:environment": "demo",
                                                                  "drbootstrap:hostname": "web09"})
    stranger = cloud.create_node("other", None, None, ex_metadata={"drbootstrap:environment": "prod"})
    monkeypatch.setattr(
        lifecycle, "provider_for", lambda spec, paths, *a, **k: make_provider(spec, paths.state_dir, cloud)
    )
    result = lifecycle.down(spec, state)
    assert result.destroyed == sorted([*ALL, "web09"])
    assert [n.id for n in cloud.list_nodes()] == [stranger.id] and orphan.id not in cloud.nodes
    assert result.volumes == ["drb-demo-db01-data"] and cloud.volumes == []
    journal = Journal.open(state, "demo")
    assert all(r.provider_id is None and not r.steps and r.generation == 1 for r in journal.data.nodes.values())
    assert lifecycle.down(spec, state).destroyed == []


def test_master_registers_its_controller_name_by_rfc2136_where_the_spec_asks(monkeypatch, tmp_path):
    from drbootstrap.dns import rfc2136
    from tests.unit.executor_fakes import SPEC

    monkeypatch.setenv("DRB_TEST_TSIG", "c2VjcmV0LXRzaWcta2V5LWZvci10ZXN0cw==")
    text = SPEC.replace("master: {hostname: controller, image: master}",
                        "master: {hostname: controller, image: master, dynamic_dns: {server: 127.0.0.1, "
                        "zone: example.org, tsig_key_name: drb-key, tsig_secret: '${env:DRB_TEST_TSIG}'}}")
    spec = load_spec_text(monkeypatch, text)
    registered = []
    monkeypatch.setattr(rfc2136, "register_address", lambda server, zone, name, address, key: registered.append(
        (str(server), zone, name, address)))
    cloud = FakeCloud()
    run_up(make_context(spec, tmp_path, cloud, FakeBroker(cloud), FakeAccess()))
    master_address = next(n for n in cloud.list_nodes() if n.name == "controller").private_ips[0]
    assert registered == [("127.0.0.1:53", "example.org", "controller", master_address)]


@pytest.mark.parametrize(("active", "down_at", "removed"), [
    (None, "primary", True), (None, "b", False), ("b", "b", True), ("b", "primary", False),
])
def test_down_removes_the_controller_name_only_at_the_active_site(monkeypatch, tmp_path, active, down_at, removed):
    from drbootstrap.dns import rfc2136
    from drbootstrap.executor import lifecycle
    from drbootstrap.failover.switch_journal import FailoverState, save_state
    from tests.unit.executor_fakes import SPEC

    monkeypatch.setenv("DRB_TEST_TSIG", "c2VjcmV0LXRzaWcta2V5LWZvci10ZXN0cw==")
    text = SPEC.replace("master: {hostname: controller, image: master}",
                        "master: {hostname: controller, image: master, dynamic_dns: {server: 127.0.0.1, "
                        "zone: example.org, tsig_key_name: drb-key, tsig_secret: '${env:DRB_TEST_TSIG}'}}")
    site_b = "sites:\n  - {name: b, provider: {name: local, network: 10.214.0.0/24}}\n"
    spec = load_spec_text(monkeypatch, text + site_b)
    removed_names = []
    monkeypatch.setattr(rfc2136, "remove_name", lambda server, zone, name, key: removed_names.append(f"{name}.{zone}"))
    cloud = FakeCloud()
    monkeypatch.setattr(lifecycle, "provider_for",
                        lambda spec, paths, *a, **k: make_provider(spec, paths.state_dir, cloud))
    paths = EnvironmentPaths(tmp_path, "demo")
    if active is not None:  # a failover moved the environment there
        paths.failover_journal.parent.mkdir(parents=True, exist_ok=True)
        save_state(paths.failover_journal, FailoverState(active_site=active))

    result = lifecycle.down(spec, tmp_path, paths=paths.at_site(down_at))

    assert removed_names == (["controller.example.org"] if removed else [])
    assert result.names == removed_names
    assert result.names_kept == ([] if removed else [f"controller.example.org (site {active or 'primary'} is active)"])


def test_node_whose_launch_was_killed_before_it_booted_is_replaced_not_waited_for(world):
    from drbootstrap.providers.nodes import LaunchRequest

    spec, state, cloud, broker, access = world
    token = LaunchRequest("demo", "mail01", "mail", "worker", "small", generation=1).client_token
    half = cloud.create_node("mail01", None, None, ex_clienttoken=token, ex_metadata={
        "drbootstrap:environment": "demo", "drbootstrap:hostname": "mail01"})
    half.extra["boot_count"] = 0
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.exit_status is ExitStatus.OK
    assert cloud.destroyed == ["mail01"] and cloud.live_hostnames() == sorted(ALL)
    assert Journal.open(state, "demo").data.nodes["mail01"].generation == 1


def test_node_the_cloud_loses_while_booting_is_relaunched_in_the_same_run_with_a_new_generation(world):
    spec, state, cloud, broker, access = world
    cloud.lose["mail01"] = 1
    events = []
    result = run_up(make_context(spec, state, cloud, broker, access, events=events))
    assert result.exit_status is ExitStatus.OK
    assert cloud.creates["mail01"] == 2 and cloud.live_hostnames() == sorted(ALL)
    record = Journal.open(state, "demo").data.nodes["mail01"]
    assert record.generation == 1 and record.is_done(Step.CHECKS)
    assert any(e.node == "mail01" and "disappeared while booting" in e.detail for e in events)


def test_node_the_cloud_keeps_losing_fails_after_a_bounded_number_of_relaunches(world):
    from drbootstrap.executor.run import MAX_RELAUNCHES

    spec, state, cloud, broker, access = world
    cloud.lose["mail01"] = 100
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.exit_status is ExitStatus.PARTIAL
    assert cloud.creates["mail01"] == MAX_RELAUNCHES + 1
    failure = result.outcomes["mail01"]
    assert failure.state == "failed" and failure.step == "launch" and "lost again" in failure.reason
    assert [o.hostname for o in result.failed] == ["mail01"]


def test_steps_never_write_the_journal_only_the_runner_does(world, monkeypatch):
    import inspect

    from drbootstrap.executor import run as runner

    spec, state, cloud, broker, access = world
    writers = set()
    for name in ("start_step", "finish_step", "forget_node", "forget_step", "update_node"):
        original = getattr(Journal, name)

        def spy(self, *args, _original=original, **kwargs):
            writers.add(inspect.stack()[1].frame.f_globals["__name__"])
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Journal, name, spy)
    cloud.lose["mail01"] = 1
    cloud.fail_boot.add("web02")
    run_up(make_context(spec, state, cloud, broker, access))
    assert writers == {runner.__name__}


def test_puppet_sign_reads_the_launch_steps_typed_fact_not_its_words(world):
    from drbootstrap.executor.outcomes import AUTOSIGN_ARMED

    spec, state, cloud, broker, access = world
    signed = []
    access.sign_certificate = lambda master_id, certname: signed.append(certname)
    # Past the master's services (so tokens can be armed on it), before any worker's puppet_sign.
    run_up(make_context(spec, state, cloud, broker, access, options=UpOptions(until=Step.TAKE_NAME)))
    journal = Journal.open(state, "demo")
    assert all(journal.data.nodes[h].steps[Step.LAUNCH].facts.get(AUTOSIGN_ARMED) is True for h in ALL[1:])
    journal.data.nodes["db01"].steps[Step.LAUNCH].facts[AUTOSIGN_ARMED] = False
    journal.data.nodes["web01"].steps[Step.LAUNCH].detail = "no autosign token (the master was not up)"
    journal.flush()
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.exit_status is ExitStatus.OK
    assert signed == ["db01.demo.internal"]  # web01's words say unarmed, its fact says armed


def test_a_plain_up_after_a_failed_step_retries_it_and_converges(world):
    spec, state, cloud, broker, access = world
    broker.fail_puppet.add("mail01.demo.internal")
    assert run_up(make_context(spec, state, cloud, broker, access)).exit_status is ExitStatus.PARTIAL
    assert Journal.open(state, "demo").data.nodes["mail01"].steps[Step.PUPPET_RUN].state is StepState.FAILED
    broker.fail_puppet.clear()
    result = run_up(make_context(spec, state, cloud, broker, access))  # no --only: up itself retries
    assert result.exit_status is ExitStatus.OK
    assert result.outcomes["mail01"].complete and all(o.complete for o in result.outcomes.values())
    assert set(cloud.creates.values()) == {1}


def test_tokens_are_armed_over_ssh_a_few_at_a_time_while_workers_launch_together(world, monkeypatch):
    spec, state, cloud, broker, _ = world
    monkeypatch.setattr("drbootstrap.executor.context.MASTER_SSH_AT_ONCE", 2)
    lock, now, most = threading.Lock(), [0], [0]

    class CountingAccess(FakeAccess):
        def arm_autosign(self, master_id, certname, digest):
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
            time.sleep(0.05)
            with lock:
                now[0] -= 1
            super().arm_autosign(master_id, certname, digest)

    access = CountingAccess()
    assert run_up(make_context(spec, state, cloud, broker, access)).exit_status is ExitStatus.OK
    assert len(access.armed) == 4 and most[0] == 2


def test_a_later_run_confirms_the_masters_services_still_answer_before_relying_on_them(world):
    from drbootstrap.images.probes import MasterNotReady

    spec, state, cloud, broker, access = world
    run_up(make_context(spec, state, cloud, broker, access))
    probes = []
    context = make_context(spec, state, cloud, broker, access)
    context.probe_services = lambda address, spec, deadline, puppet_ca=False: (
        probes.append("puppet_ca" if puppet_ca else "services") or "dns: ready after 0.0 s")
    run_up(context)
    # the done services step, probed again (and the Puppet CA where the spec runs a Puppet server)
    assert probes.count("services") == 1 and probes.count("puppet_ca") == (spec.master.puppet.mode == "server")

    def dead_dns(address, spec, deadline, puppet_ca=False):
        raise MasterNotReady(f"master {address} not ready: dns: no answer", hint="see dns/dnsmasq.log")

    events = []
    context = make_context(spec, state, cloud, broker, access, events=events)
    context.probe_services = dead_dns
    result = run_up(context)
    assert result.outcomes["controller"].state == "failed"
    assert "answered in an earlier run, but now master" in result.outcomes["controller"].reason
    assert "dns: no answer" in result.outcomes["controller"].reason
    # The workers were complete already: pipelined, they wait on the master only before their Puppet
    # steps, which are done, so they stay complete (nothing relaunched) while the master's step fails.
    assert all(result.outcomes[h].state == "done" for h in ALL[1:])
    assert result.exit_status is ExitStatus.PARTIAL
    assert Journal.open(state, "demo").data.nodes["controller"].steps[Step.SERVICES].state is StepState.FAILED
    run_up(make_context(spec, state, cloud, broker, access))  # services answer again: the step is redone
    assert Journal.open(state, "demo").data.nodes["controller"].steps[Step.SERVICES].state is StepState.DONE
    assert set(cloud.creates.values()) == {1}


def test_a_boot_that_failed_while_no_run_could_record_it_is_replaced_by_the_next_run(world):
    spec, state, cloud, broker, access = world
    cloud.fail_boot.add("db01")
    run_up(make_context(spec, state, cloud, broker, access))
    cloud.fail_boot.clear()
    journal = Journal.open(state, "demo")
    journal.start_step("db01", Step.BOOT)  # the run stopped (state disk full) before it recorded the failure
    journal.flush()
    result = run_up(make_context(spec, state, cloud, broker, access))
    assert result.exit_status is ExitStatus.OK
    assert cloud.destroyed == ["db01"] and cloud.creates["db01"] == 2
    assert cloud.live_hostnames() == sorted(ALL)
