"""Loading a spec: defaults, positions, every problem in one run, did-you-mean, hostnames."""

import textwrap
from pathlib import Path

import pytest

from drbootstrap.errors import SpecError
from drbootstrap.spec import load_spec, parse_spec
from drbootstrap.spec.groups import find_cycles
from drbootstrap.spec.models import EnvironmentSpec, NodeGroup, VolumeSpec
from drbootstrap.spec.positions import load_with_positions
from drbootstrap.spec.problems import dotted, model_at
from drbootstrap.spec.types import dangerous_character
from tests.support.prereq import REPO_ROOT

MINIMAL = """\
environment: demo
domain: demo.internal
provider:
  name: local
nodes:
  - role: db
    hostnames: [db01]
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(textwrap.dedent(text), filename="env.yaml")
    return caught.value.problems


def test_local_example_loads_with_its_hostnames_and_provider_settings():
    spec = load_spec(REPO_ROOT / "examples" / "local.yaml")
    assert spec.environment == "demo"
    assert spec.worker_hostnames() == ["db01", "web01", "web02", "mail01"]
    assert spec.provider.network == "10.213.0.0/24"
    assert (spec.provider.rate.per_second, spec.provider.rate.burst) == (20, 40)
    assert spec.source_path == REPO_ROOT / "examples" / "local.yaml"
    assert spec.group("web").after == ["db"]


def test_minimal_spec_gets_documented_defaults():
    spec = parse_spec(MINIMAL)
    assert spec.master.hostname == "controller"
    assert spec.master.image == "master"
    assert spec.master.broker.kind == "activemq" and spec.master.broker.port == 61613
    assert spec.master.puppet.mode == "server"
    assert spec.provider.max_parallel is None and spec.provider.rate is None  # the provider family's defaults
    assert spec.provider.network == "10.213.0.0/24"
    assert spec.nodes[0].image == "worker" and spec.nodes[0].puppet.environment == "production"
    assert spec.security.psk is None
    assert spec.drill.teardown == "on_success"
    assert spec.fqdn("db01") == "db01.demo.internal"


def test_local_provider_maps_images_and_sizes_to_themselves():
    spec = parse_spec(MINIMAL)
    assert spec.provider.image_id("worker") == "worker"
    assert spec.provider.size_id("small") == "small"


def test_hostname_pattern_expands_one_based_in_order():
    group = NodeGroup(role="web", count=3, hostname_pattern="web{n:02}")
    assert group.expand_hostnames() == ["web01", "web02", "web03"]


def test_the_spec_is_immutable():
    spec = parse_spec(MINIMAL)
    with pytest.raises(Exception):  # noqa: B017 - any refusal to assign proves it; pydantic picks the type
        spec.environment = "other"


def test_positions_are_one_based_for_keys_and_values():
    document = load_with_positions("a: 1\nnodes:\n  - role: db\n    count: 2\n")
    assert document.source.key(("nodes", 0, "count")) == (4, 5)
    assert document.source.value(("nodes", 0, "count")) == (4, 12)
    assert document.source.value(("nodes", 0)) == (3, 5)


def test_unknown_path_falls_back_to_the_nearest_known_ancestor():
    document = load_with_positions("nodes:\n  - role: db\n")
    assert document.source.value(("nodes", 0, "volumes", 3)) == (2, 5)


def test_every_problem_is_reported_in_one_run_sorted_by_line():
    lines = problems_of(
        """\
        environment: demo
        domain: demo.internal
        provider: {name: local, max_parallel: 0}
        nodes:
          - role: web
            hostnames: [web01, web01]
            after: [db]
            colour: blue
        """
    )
    assert len(lines) == 4
    assert [line.split(":")[1] for line in lines] == ["3", "6", "7", "8"]
    assert all(line.startswith("env.yaml:") for line in lines)


def test_unknown_key_gets_a_did_you_mean():
    (line,) = problems_of(
        MINIMAL.replace("hostnames:", "hostnames: [db01]\n    voluems: []\n    x:", 1).replace(
            "x: [db01]\n", ""
        )
    )
    assert "unknown key 'voluems' in nodes[0]" in line
    assert "(did you mean 'volumes'?)" in line


def test_model_at_walks_lists_and_optional_fields():
    assert model_at(EnvironmentSpec, ("nodes", 2)) is NodeGroup
    assert model_at(EnvironmentSpec, ("nodes", 0, "volumes", 1)) is VolumeSpec
    assert model_at(EnvironmentSpec, ("nodes", 0, "nonexistent")) is None


def test_dotted_path_renders_indexes_in_brackets():
    assert dotted(("nodes", 1, "checks", 0, "tcp")) == "nodes[1].checks[0].tcp"


def test_yaml_anchors_and_merge_keys_are_supported():
    spec = parse_spec(
        MINIMAL
        + """\
  - &web
    role: web
    count: 2
    hostname_pattern: "web{n}"
  - <<: *web
    role: api
    hostname_pattern: "api{n}"
"""
    )
    assert spec.worker_hostnames() == ["db01", "web1", "web2", "api1", "api2"]


def test_hostnames_must_be_unique_across_groups_and_the_master():
    lines = problems_of(MINIMAL.replace("[db01]", "[controller]"))
    assert "repeats hostname 'controller', already used by the master (default hostname)" in lines[0]


def test_after_cycle_is_reported_once_with_its_path():
    text = MINIMAL + "    after: [web]\n  - role: web\n    hostnames: [web01]\n    after: [db]\n"
    (line,) = problems_of(text)
    assert "cycle: db -> web -> db" in line


@pytest.mark.parametrize("value", ["a\nb", "a b", "a'b", 'a"b', "a;b", "a`b", "a$b", "a|b", "a\x00b"])
def test_characters_that_could_inject_into_a_shell_or_hosts_file_are_named(value):
    assert dangerous_character(value) is not None


def test_plain_identifiers_are_not_flagged_as_injection():
    assert dangerous_character("ami-0a1b2c3d/role::db@x.y+z=1,2") is None


def test_find_cycles_returns_each_cycle_once():
    cycles = find_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["d"], "e": []})
    assert sorted(map(sorted, cycles)) == [["a", "b", "c"], ["d"]]


def test_multi_line_restore_command_is_allowed():
    spec = parse_spec(
        MINIMAL + "    restore:\n      - command: |\n          set -e\n          restore-db /srv\n"
    )
    assert spec.nodes[0].restore[0].command == "set -e\nrestore-db /srv\n"


def test_provider_credentials_in_extra_are_refused():
    text = MINIMAL.replace("name: local", "name: local\n  extra: {ex_password: x}")
    (line,) = problems_of(text)
    assert "provider.extra.ex_password looks like a secret" in line


def test_unreadable_file_is_one_located_line(tmp_path: Path):
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "missing.yaml")
    assert caught.value.problems[0].startswith(f"{tmp_path / 'missing.yaml'}:1:1: cannot read the spec")


def test_control_characters_in_user_values_never_split_a_problem_line():
    lines = problems_of('environment: demo\ndomain: demo.internal\n"a\\nb": 1\nprovider: {name: "x\\ny"}\n')
    assert all("\n" not in line for line in lines)
    assert any("unknown key 'a\\nb'" in line for line in lines)


@pytest.mark.parametrize(
    "fragment",
    [
        "provider: 1\nnodes: {a: 1}\n",
        "provider: {name: local}\nnodes: [1, null, [], {role: [x]}]\n",
        "provider: {name: [ec2], images: 3}\nsites: [{provider: []}, 5]\n",
        "provider: {name: local}\npublic_dns: {records: [1, {targets: []}]}\n",
        "provider: {name: local}\nnodes: [{role: a, after: [[1]], count: x, hostname_pattern: {}}]\n",
    ],
)
def test_wrongly_shaped_specs_are_problems_not_crashes(fragment):
    lines = problems_of("environment: demo\ndomain: demo.internal\n" + fragment)
    assert lines and all(line.startswith("env.yaml:") for line in lines)
