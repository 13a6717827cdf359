"""`up --until STEP` with the fake cloud, broker and nodes; the driver substitution seam; retry rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from drbootstrap.errors import ProviderError
from drbootstrap.executor import UpOptions, run_up
from drbootstrap.executor.events import RETRY, Event
from drbootstrap.journal import Journal, Step
from drbootstrap.providers.registry import create_provider
from drbootstrap.providers.settings import (
    PlainSecret,
    ProviderSettings,
    retry_policy_for,
    split_extra,
)
from drbootstrap.providers.values import EnvironmentScope
from tests.unit.executor_fakes import (  # noqa: F401 - world is a fixture
    ALL,
    FakeAccess,
    FakeBroker,
    FakeCloud,
    load_spec_text,
    make_context,
    make_provider,
    world,
)


def test_until_launch_launches_every_node_then_stops_and_a_plain_up_resumes_from_there(world):
    spec, state, cloud, broker, access = world
    events = []
    result = run_up(make_context(spec, state, cloud, broker, access, events=events,
                                 options=UpOptions(until=Step.LAUNCH)))
    assert not result.failed and result.until == "launch"
    assert cloud.live_hostnames() == sorted(ALL)
    journal = Journal.open(state, "demo")
    assert all(list(journal.data.nodes[h].steps) == [Step.LAUNCH] for h in ALL)
    assert not broker.calls  # nothing past launch touched the broker
    assert {e.step for e in events if e.state == "running"} == {"launch"}
    assert all("stopped after launch" in o.reason for o in result.outcomes.values())

    resumed = run_up(make_context(spec, state, cloud, broker, access))
    assert not resumed.failed and not resumed.until
    assert set(cloud.creates.values()) == {1}  # nothing launched twice
    assert Journal.open(state, "demo").data.nodes["web01"].is_done(Step.CHECKS)


def test_until_a_step_the_master_lacks_stops_each_node_at_the_last_step_not_after_it(world):
    spec, state, cloud, broker, access = world
    run_up(make_context(spec, state, cloud, broker, access, options=UpOptions(until=Step.TAKE_NAME)))
    journal = Journal.open(state, "demo")
    assert set(journal.data.nodes["web01"].steps) == {Step.LAUNCH, Step.REGISTER_NAME, Step.BOOT, Step.TAKE_NAME}
    # The master has no take_name: it stops before the first of its steps beyond it (discover).
    assert set(journal.data.nodes["controller"].steps) == {Step.LAUNCH, Step.BOOT, Step.SERVICES,
                                                           Step.REGISTER_NAME}


def ec2_settings(**extra) -> ProviderSettings:
    return ProviderSettings(name="ec2", region="us-east-1", endpoint="http://127.0.0.1:1",
                            credentials={"access_key_id": PlainSecret("AKIDEXAMPLE"),
                                         "secret_access_key": PlainSecret("secretexample")}, extra=extra)


def build_driver(settings: ProviderSettings):
    scope = EnvironmentScope("demo", Path("/nonexistent"), Path("/nonexistent/ssh-key.pem"))
    return create_provider(settings, scope).new_driver()


def test_extra_driver_class_substitutes_a_subclass_of_the_providers_driver():
    from tests.support.moto_ec2 import MotoEC2NodeDriver

    driver = build_driver(ec2_settings(driver_class="tests.support.moto_ec2:MotoEC2NodeDriver",
                                       operator_cidr="192.0.2.1/32"))
    assert type(driver) is MotoEC2NodeDriver and driver.connection.host == "127.0.0.1"
    assert type(build_driver(ec2_settings())).__name__ == "EC2NodeDriver"


@pytest.mark.parametrize("reference, why", [("no.such.module:Driver", "cannot be imported"),
                                            ("drbootstrap.errors:ProviderError", "is not a EC2NodeDriver")])
def test_a_driver_class_that_is_missing_or_not_a_driver_is_refused_clearly(reference, why):
    with pytest.raises(ProviderError, match=why) as caught:
        build_driver(ec2_settings(driver_class=reference))
    assert caught.value.hint


def test_drbootstraps_own_extra_keys_never_reach_the_driver_and_set_the_retry_policy():
    from libcloud.compute.drivers.ec2 import EC2NodeDriver

    extra = {"driver_class": "x:y", "operator_cidr": "192.0.2.1/32", "retry_max_attempts": 12,
             "retry_base_delay": 0.05, "ex_keyname": "mine"}
    constructor, create = split_extra(EC2NodeDriver, extra)
    assert constructor == {} and create == {"ex_keyname": "mine"}
    policy = retry_policy_for(ec2_settings(**extra))
    assert (policy.max_attempts, policy.base_delay) == (12, 0.05)


def test_plain_output_shows_each_cloud_retry(capsys):
    from drbootstrap.cli.run_commands import PlainLines

    PlainLines().event(Event(node="", step="cloud", state=RETRY, elapsed=1.5,
                             detail="launch web01: throttled, attempt 2/8, retrying in 0.4 s"))
    assert "- cloud retry: launch web01: throttled, attempt 2/8" in capsys.readouterr().out


def test_until_launch_on_a_real_cloud_arms_no_token_on_an_unready_master_and_signs_explicitly_later(world):
    spec, state, cloud, broker, access = world
    spec = spec.model_copy(update={"provider": spec.provider.model_copy(update={"name": "openstack"})})
    # plain STOMP, as the fake broker speaks: the broker link's TLS is tests/unit/test_broker_tls.py's
    broker_block = spec.master.broker.model_copy(update={"tls": False})
    spec = spec.model_copy(update={"master": spec.master.model_copy(update={"broker": broker_block})})
    run_up(make_context(spec, state, cloud, broker, access, options=UpOptions(until=Step.LAUNCH)))
    assert access.armed == {}  # the master's files cannot be reached before its services answer
    assert "no autosign token" in Journal.open(state, "demo").data.nodes["db01"].steps[Step.LAUNCH].detail

    result = run_up(make_context(spec, state, cloud, broker, access))

    assert not result.failed and set(cloud.creates.values()) == {1}
    assert "signed db01.demo.internal" in Journal.open(state, "demo").data.nodes["db01"].steps[Step.PUPPET_SIGN].detail


class ConsoleDriver:
    """Just enough of an EC2 driver for SshNodeAccess: one node and its console output."""

    name = "fake"

    def __init__(self, console: str | None) -> None:
        from types import SimpleNamespace

        self.console = console
        self.node = SimpleNamespace(id="i-1", name="controller", public_ips=["198.51.100.7"], private_ips=["10.0.0.5"])
        if console is None:
            self.ex_get_console_output = None

    def list_nodes(self, ex_node_ids=None):
        return [self.node] if ex_node_ids == ["i-1"] else []

    def ex_get_console_output(self, node):
        return {"output": self.console}


def test_ssh_access_pins_the_host_key_from_the_console_and_refuses_a_driver_without_console(tmp_path, monkeypatch):
    import base64

    from drbootstrap.executor.ssh_access import SshNodeAccess

    blob = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))).decode()
    console = f"boot\n-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 {blob} root@controller\n" \
              "-----END SSH HOST KEY KEYS-----\n"
    spec = load_spec_text(monkeypatch)
    access = SshNodeAccess(make_provider(spec, tmp_path, ConsoleDriver(console), name="ec2"))
    target = access.target("i-1")
    assert target.host == "198.51.100.7" and [k.blob for k in target.pinned_keys] == [blob]
    assert access.node_path("db01", "/srv/db") == "/srv/db"
    assert set(access.node_dirs("db01")) == {"ssh_authorized_keys"}  # the image's own directories
    with pytest.raises(ProviderError, match="no console output"):
        SshNodeAccess(make_provider(spec, tmp_path, ConsoleDriver(None), name="ec2")).target("i-1")
    with pytest.raises(ProviderError, match="not known"):
        access.target("i-2")


def test_the_local_cloud_takes_a_driver_class_too(tmp_path):
    from drbootstrap.providers.local.driver import LocalNodeDriver
    from tests.support.flaky_local_cloud import FlakyLocalNodeDriver

    def local(**extra) -> ProviderSettings:
        return ProviderSettings(name="local", network="10.213.0.0/24", extra=extra)

    scope = EnvironmentScope("demo", tmp_path, tmp_path / "ssh-key.pem")
    flaky = create_provider(local(driver_class="tests.support.flaky_local_cloud:FlakyLocalNodeDriver"), scope)
    assert type(flaky.new_driver()) is FlakyLocalNodeDriver
    assert type(create_provider(local(), scope).new_driver()) is LocalNodeDriver
    with pytest.raises(ProviderError, match="is not a LocalNodeDriver"):
        create_provider(local(driver_class="tests.support.moto_ec2:MotoEC2NodeDriver"), scope).new_driver()
