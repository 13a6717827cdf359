"""The recovery plan: the master first, then waves that honour `after:`; pure and resumable."""

import json
import textwrap

from drbootstrap.exit_status import ExitStatus
from drbootstrap.plan import MASTER_WAVE, Step, build_plan, is_complete, role_waves
from drbootstrap.spec import load_spec, parse_spec
from tests.support.prereq import REPO_ROOT

LOCAL = REPO_ROOT / "examples" / "local.yaml"


def chain_spec():
    return parse_spec(
        textwrap.dedent(
            """\
            environment: chain
            domain: chain.internal
            provider: {name: local}
            nodes:
              - {role: app, hostnames: [app01], after: [db, cache]}
              - {role: db, hostnames: [db01]}
              - {role: cache, hostnames: [cache01], after: [db]}
              - {role: web, count: 2, hostname_pattern: "web{n}", after: [app]}
              - {role: mail, hostnames: [mail01]}
            """
        )
    )


def test_plan_json_lists_the_master_first_and_db01_before_web01(cli):
    result = cli("plan", str(LOCAL), "--json")
    assert result.exit_code == ExitStatus.OK, result.stderr
    plan = json.loads(result.stdout)
    assert plan["nodes"][0]["hostname"] == "controller" and plan["nodes"][0]["role"] == "master"
    waves = {node["hostname"]: node["wave"] for node in plan["nodes"]}
    assert waves["db01"] < waves["web01"]
    assert [node["hostname"] for node in plan["waves"][0]] == ["db01", "mail01"]


def test_plan_table_names_every_node_with_role_image_size_and_wave(cli):
    result = cli("plan", str(LOCAL))
    assert result.exit_code == ExitStatus.OK, result.stderr
    for hostname in ("controller", "db01", "web01", "web02", "mail01"):
        assert hostname in result.stdout
    assert "master" in result.stdout and "worker" in result.stdout and "small" in result.stdout


def test_wave_is_one_more_than_the_latest_role_waited_for():
    waves = role_waves(chain_spec().nodes)
    assert waves == {"db": 0, "mail": 0, "cache": 1, "app": 2, "web": 3}


def test_nodes_keep_spec_order_within_a_wave_and_carry_their_details():
    plan = build_plan(chain_spec())
    assert [[node.hostname for node in wave] for wave in plan.waves] == [
        ["db01", "mail01"],
        ["cache01"],
        ["app01"],
        ["web1", "web2"],
    ]
    web1 = plan.waves[3][0]
    assert (web1.fqdn, web1.role, web1.image, web1.size, web1.wave) == (
        "web1.chain.internal",
        "web",
        "worker",
        "small",
        3,
    )
    assert web1.group is not None and web1.group.role == "web"
    assert plan.master.wave == MASTER_WAVE and plan.master.is_master


def test_done_nodes_are_marked_and_left_out_of_pending():
    plan = build_plan(load_spec(LOCAL), done={"controller", "db01"})
    assert [node.hostname for node in plan.nodes() if node.done] == ["controller", "db01"]
    assert [node.hostname for node in plan.pending()] == ["mail01", "web01", "web02"]


def test_build_plan_is_pure_and_repeatable():
    spec = load_spec(LOCAL)
    assert build_plan(spec).to_dict() == build_plan(spec).to_dict()


def test_plan_to_dict_is_json_ready_and_counts_every_node():
    data = build_plan(load_spec(LOCAL)).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["node_count"] == 5
    assert data["environment"] == "demo" and data["provider"] == "local"


def test_spec_without_nodes_plans_only_the_master():
    spec = parse_spec("environment: solo\ndomain: solo.internal\nprovider: {name: local}\n")
    plan = build_plan(spec)
    assert plan.waves == [] and [node.hostname for node in plan.nodes()] == ["controller"]


def test_invalid_spec_plan_exits_with_invalid_spec(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("environment: x\n")
    result = cli("plan", str(bad))
    assert result.exit_code == ExitStatus.INVALID_SPEC
    assert result.stderr.startswith(f"{bad}:1:1: missing required key 'domain'")


def test_each_node_carries_its_steps_in_order_master_and_worker_differ():
    plan = build_plan(load_spec(LOCAL))
    assert [str(s) for s in plan.master.steps] == ["launch", "boot", "services", "register_name", "discover",
                                              "puppet_ca"]
    worker = plan.waves[0][0]
    assert [str(s) for s in worker.steps] == ["launch", "register_name", "boot", "take_name", "discover", "volumes",
                                              "puppet_sign", "puppet_run", "puppet_enable", "restore", "checks"]
    assert plan.to_dict()["master"]["steps"][0] == "launch"


def test_steps_through_until_stops_each_node_at_the_step_or_before_the_first_beyond_it():
    plan = build_plan(load_spec(LOCAL))
    worker = plan.waves[0][0]
    assert worker.steps_through(None) == worker.steps
    assert worker.steps_through(Step.LAUNCH) == (Step.LAUNCH,)
    assert worker.steps_through(Step.TAKE_NAME)[-1] is Step.TAKE_NAME
    # the master has no take_name: it stops before discover, the first of its steps beyond it
    assert plan.master.steps_through(Step.TAKE_NAME) == (Step.LAUNCH, Step.BOOT, Step.SERVICES, Step.REGISTER_NAME)
    assert plan.master.steps_through(Step.CHECKS) == plan.master.steps


class Record:
    def __init__(self, done: set[Step]) -> None:
        self.done = done

    def is_done(self, step: Step) -> bool:
        return step in self.done


def test_a_node_is_complete_only_when_every_one_of_its_planned_steps_is_done():
    plan = build_plan(load_spec(LOCAL))
    master, worker = plan.master, plan.waves[0][0]
    assert not is_complete(None, master)
    assert is_complete(Record(set(master.steps)), master)
    assert not is_complete(Record(set(master.steps)), worker)  # the master's steps are not a worker's
    assert not is_complete(Record(set(worker.steps) - {Step.CHECKS}), worker)
    assert is_complete(Record(set(worker.steps)), worker)
