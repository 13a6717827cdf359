"""Property tests: no input crashes the spec loader, the journal reader or the cloud-init code.

Every input either loads or is refused with one-line DrbErrors carrying the invalid-input exit
status (3; the local cloud's user-data reader: its provider status). Example counts are bounded so
the file runs in seconds; inputs that once found a problem are kept as explicit examples.
"""

import json
import os
import re
import string

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drbootstrap.errors import DrbError, ProviderError, SpecError
from drbootstrap.exit_status import ExitStatus
from drbootstrap.journal import Journal, JournalError, Step
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import build_plan
from drbootstrap.providers.local import cloudinit
from drbootstrap.spec import parse_spec
from tests.support.prereq import REPO_ROOT

EXAMPLE_SPEC = yaml.safe_load((REPO_ROOT / "examples" / "local.yaml").read_text())
LOCATED = re.compile(r"^<spec>:\d+:\d+: \S")
# DRB_PROPERTY_EXAMPLES=5000 for a longer search (tests/bench/RESULTS.md); CI keeps the default.
EXAMPLES = int(os.environ.get("DRB_PROPERTY_EXAMPLES", "150"))
FAST = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["${env:HOME}", "${file:/nonexistent}", "web{n:02}", "{n.__class__}", "db01", "0x1F", "~"]),
)
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)


def assert_clean_spec_refusal(text: str) -> None:
    """parse_spec (and the plan, as `validate` builds it) succeed, or refuse with located lines."""
    try:
        build_plan(parse_spec(text, resolve_secrets=False))
    except SpecError as error:
        assert error.exit_status == ExitStatus.INVALID_SPEC
        assert error.problems, "a refusal names at least one problem"
        for line in error.problems:
            assert "\n" not in line and LOCATED.match(line), line


@FAST
@given(st.text(max_size=300))
@example("a: &a [*a]")  # a recursive alias: was refused only by the nesting guard, 5 lines
@example("environment: 2001-02-30\n")  # an impossible date: was a ValueError traceback
@example("x: " + "9" * 5000)  # over Python's int digit limit: was a ValueError traceback
@example("a: \x00")  # a control character: was a multi-line ReaderError traceback
@example("---\na: 1\n---\nb: 2\n")
@example("? [a, b]\n: c\n")
@example("<<: {a: 1}\n<<: 2\n")
def test_any_text_is_loaded_or_refused_with_located_lines(text):
    assert_clean_spec_refusal(text)


YAML_TAGS = ["int", "float", "bool", "null", "str", "timestamp", "binary", "map", "seq", "set", "omap", "pairs",
             "merge", "value", "python/name:os.system", "python/object/apply:os.system"]


@FAST
@given(st.sampled_from(YAML_TAGS), st.text(max_size=15), st.booleans())
@example("timestamp", "x", False)  # was an AttributeError inside pyyaml's constructor
@example("bool", "maybe", False)  # was a KeyError
@example("int", "", True)  # was a ValueError (empty after sign and underscores)
def test_any_tagged_value_is_loaded_or_refused_with_located_lines(tag, value, quoted):
    written = json.dumps(value) if quoted else value
    assert_clean_spec_refusal(f"environment: demo\nmaster:\n  hostname: !!{tag} {written}\nx: [!!{tag} {written}]\n")
    with_header = f"#cloud-config\nruncmd:\n  - !!{tag} {written}\n"
    try:
        cloudinit.parse_cloud_config(with_header)
    except ProviderError as error:
        assert "\n" not in str(error)


@FAST
@given(structures)
def test_any_yaml_structure_is_loaded_or_refused_with_located_lines(data):
    assert_clean_spec_refusal(yaml.safe_dump(data, allow_unicode=True))


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, prefix + (index,))


EXAMPLE_PATHS = [path for path in _paths(EXAMPLE_SPEC) if path]


@FAST
@given(st.sampled_from(EXAMPLE_PATHS), structures)
@example(("nodes", 0, "hostnames"), None)  # `hostnames:` empty passed validation, then the plan asserted
@example(("nodes", 1, "count"), 10**9)
@example(("nodes", 1, "hostname_pattern"), "{n:>99999}")
@example(("nodes",), [{"role": f"r{i}", "count": 10_000, "hostname_pattern": f"r{i}-{{n}}"} for i in range(3)])
def test_the_example_with_one_value_replaced_is_loaded_or_refused_with_located_lines(path, value):
    data = json.loads(json.dumps(EXAMPLE_SPEC))
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert_clean_spec_refusal(yaml.safe_dump(data, allow_unicode=True))


roles = st.sampled_from(["db", "web", "mail", "cache", "Bad_Role", "", "master"])
labels = st.sampled_from(["db01", "web01", "web02", "controller", "a" * 64, "x", "-bad", "web01"])
node_groups = st.lists(
    st.fixed_dictionaries(
        {"role": roles},
        optional={
            "hostnames": st.lists(labels, max_size=4) | structures,
            "count": st.integers(min_value=-2, max_value=10_001) | scalars,
            "hostname_pattern": st.sampled_from(["web{n:02}", "db{n}", "{n}", "x{n:>70}", "{m}", "{n.real}", "{"]),
            "after": st.lists(roles, max_size=3) | scalars,
            "image": st.sampled_from(["worker", "master", "nope"]),
            "volumes": st.lists(st.fixed_dictionaries({"name": labels,
                                                       "mount": st.sampled_from(["/srv", "srv", "/srv"]),
                                                       "size_gb": st.integers(-1, 70_000)}), max_size=2),
        },
    ),
    max_size=8,
)


@FAST
@given(node_groups, st.sampled_from(["10.213.0.0/24", "10.213.0.0/30", "10.0.0.0/8", "bad"]))
@example([{"role": "web", "after": ["db"]}, {"role": "db", "after": ["web"]}], "10.213.0.0/24")
def test_any_node_groups_are_loaded_or_refused_with_located_lines(groups, network):
    data = {"environment": "demo", "domain": "demo.internal", "provider": {"name": "local", "network": network},
            "nodes": groups}
    assert_clean_spec_refusal(yaml.safe_dump(data, allow_unicode=True))


# --- the journal -------------------------------------------------------------------------------


def _written_journal(tmp_path) -> dict:
    EnvironmentPaths(tmp_path, "prod").journal.unlink(missing_ok=True)  # left by the example before
    journal = Journal.open(tmp_path, "prod")
    journal.node("db01", role="db")
    journal.update_node("db01", provider_id="i-1", client_token="tok", address="10.0.0.5")
    journal.start_step("db01", Step.LAUNCH)
    journal.finish_step("db01", Step.LAUNCH, detail="ok")
    data = json.loads(EnvironmentPaths(tmp_path, "prod").journal.read_text())
    EnvironmentPaths(tmp_path, "prod").journal.unlink()
    return data


def assert_journal_loads_or_is_refused_cleanly(tmp_path, text: str | bytes) -> None:
    path = EnvironmentPaths(tmp_path, "prod").journal
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", errors="surrogatepass"))
    try:
        Journal.open(tmp_path, "prod")
    except JournalError as error:
        assert error.exit_status == ExitStatus.INVALID_SPEC
        assert "\n" not in str(error)
        assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: \S", str(error)), str(error)


@pytest.fixture(scope="module")
def journal_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("journal")


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@example(b'{"version": 1, "environment": "e", "nodes": {"n": {"hostname": "n", "role": "r", "steps": {"boot": '
         b'{"state": "done", "started_at": NaN}}}}}')  # NaN accepted by json: now refused, located
@example(b"[" * 5000)  # json's recursion limit: now located at the level too deep
def test_any_bytes_as_a_journal_load_or_are_refused_cleanly(journal_dir, data):
    assert_journal_loads_or_is_refused_cleanly(journal_dir, data)


@pytest.fixture(scope="module")
def real_journal(tmp_path_factory) -> str:
    return json.dumps(_written_journal(tmp_path_factory.mktemp("written")))


@FAST
@given(st.data())
def test_a_real_journal_with_one_value_replaced_loads_or_is_refused_cleanly(journal_dir, real_journal, data):
    journal = json.loads(real_journal)
    paths = [path for path in _paths(journal) if path]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(structures)
    target = journal
    for part in path[:-1]:
        target = target[part]
    if data.draw(st.booleans()):
        target[path[-1]] = value
    else:  # rename the key instead: unknown fields and step names
        target[data.draw(st.text(max_size=10))] = target.pop(path[-1])
    assert_journal_loads_or_is_refused_cleanly(journal_dir, json.dumps(journal, allow_nan=True))


# --- cloud-init: the renderer and the local cloud's interpreter ---------------------------------

from drbootstrap.images.userdata import NodeBootConfig, UserDataError, node_env, render_user_data  # noqa: E402

free_text = st.text(max_size=60)  # quotes, newlines, unicode: what a person may type


@FAST
@given(environment=free_text, role=free_text, token=free_text, key=free_text)
@example(environment="it's \"quoted\"", role="a\nb", token="tok\u2028en", key="line1\r\nline2 \n")
def test_rendered_user_data_reads_back_exactly_through_the_local_cloud(environment, role, token, key):
    config = NodeBootConfig(
        environment=environment, domain="demo.internal", hostname="web01", role=role, image="worker",
        broker_host="10.0.0.1", master_address="10.0.0.1", autosign_token=token, agent_key=key,
    )
    try:
        text = render_user_data(config, allow_gzip=False).decode()
    except UserDataError as error:  # too big: one line, a DrbError
        assert "\n" not in str(error)
        return
    parsed = cloudinit.parse_cloud_config(text)
    files = {f.path: f.content for f in parsed.write_files}
    assert files["/etc/drbootstrap/node.env"] == node_env(config)
    assert files["/etc/drbootstrap/agent.key"] == key
    assert files["/etc/drbootstrap/autosign.token"] == token + "\n"
    cloudinit.render_per_instance(parsed)
    cloudinit.render_per_boot(parsed)


def test_node_env_values_come_back_exactly_when_sourced_by_sh(tmp_path):
    import subprocess

    awkward = ["it's", 'say "hi"', "a\nb", "$(touch pwned)", "`id`", "unicodé ☃", "back\\slash", " lead"]
    config = NodeBootConfig(
        environment=awkward[0], domain="demo.internal", hostname="web01", role="\n".join(awkward), image="worker",
        broker_host="10.0.0.1", master_address="10.0.0.1",
    )
    env_file = tmp_path / "node.env"
    env_file.write_text(node_env(config))
    result = subprocess.run(["sh", "-c", f'. {env_file}; printf %s "$DRB_ROLE"'], capture_output=True, text=True,
                            cwd=tmp_path, check=True)
    assert result.stdout == "\n".join(awkward)
    assert not (tmp_path / "pwned").exists()


cloud_config_like = st.fixed_dictionaries(
    {},
    optional={
        "write_files": st.lists(
            st.fixed_dictionaries(
                {"path": scalars},
                optional={"content": scalars, "encoding": st.sampled_from(["text", "b64", "gzip", 3]),
                          "permissions": scalars, "append": scalars},
            ),
            max_size=3,
        ) | structures,
        "bootcmd": structures,
        "runcmd": structures,
        "packages": structures,
    },
)


@FAST
@given(st.text(max_size=300).map(lambda body: "#cloud-config\n" + body) | cloud_config_like.map(
    lambda data: "#cloud-config\n" + yaml.safe_dump(data, allow_unicode=True)))
@example("#cloud-config\n?")  # a null key: was a TypeError listing the ignored keys
@example("#cloud-config\nwrite_files:\n  - path: /x\n    content: \"\\ud800\"\n")  # a lone surrogate
@example("#cloud-config\nwrite_files:\n  - path: /x\n    content: '!!'\n    encoding: b64\n")
@example("#cloud-config\na: &a [*a, *a]\nruncmd: *a\n")
@example("#cloud-config\n" + "x: [" * 200)
def test_any_cloud_config_is_interpreted_or_refused_in_one_line(text):
    try:
        parsed = cloudinit.parse_cloud_config(text)
    except ProviderError as error:
        assert "\n" not in str(error), str(error)
        return
    for script in (cloudinit.render_per_instance(parsed), cloudinit.render_per_boot(parsed)):
        script.encode("utf-8")  # it is written to a file the node's sh runs


def test_user_data_over_sixteen_kilobytes_is_refused_by_the_local_cloud():
    text = "#cloud-config\nruncmd:\n" + "  - echo " + "x" * 17_000 + "\n"
    with pytest.raises(ProviderError, match="over the limit of 16384"):
        cloudinit.parse_cloud_config(text)


def test_an_alias_bomb_in_user_data_is_refused_quickly():
    lines = ["#cloud-config", 'a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    with pytest.raises(ProviderError, match="aliases expanded"):
        cloudinit.parse_cloud_config("\n".join(lines) + "\n")


def test_every_drb_error_kind_used_here_is_one_root():
    assert issubclass(SpecError, DrbError) and issubclass(JournalError, DrbError)
    assert string.printable  # keeps the import honest for the strategies above
