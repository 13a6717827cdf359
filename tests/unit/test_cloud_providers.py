"""Driver construction from the provider block: EC2 (any region or endpoint), Eucalyptus,
OpenStack (Keystone v3), GCE and the passthrough; credentials from references or the usual variables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from libcloud.compute.drivers.ec2 import EC2NodeDriver, EucNodeDriver

from drbootstrap.errors import ProviderError
from drbootstrap.providers.ec2_driver import (
    build_ec2_driver,
    ec2_driver_kwargs,
    eucalyptus_driver_kwargs,
    parse_endpoint,
)
from drbootstrap.providers.gce import gce_driver_arguments
from drbootstrap.providers.openstack import build_openstack_driver, openstack_driver_arguments
from drbootstrap.providers.registry import create_provider, provider_class
from drbootstrap.providers.settings import PlainSecret, ProviderSettings, RateSettings
from drbootstrap.providers.values import EnvironmentScope

SCOPE = EnvironmentScope("env1", Path("/nonexistent"), Path("/nonexistent/ssh-key.pem"))


def build_driver(settings: ProviderSettings):
    """The driver the registry's provider for these settings builds."""
    return create_provider(settings, SCOPE).new_driver()


def bucket_for(settings: ProviderSettings):
    return create_provider(settings, SCOPE).pacing.bucket


AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIAENVENVENVENVENV1", "AWS_SECRET_ACCESS_KEY": "envsecret"}


def aws(**more) -> ProviderSettings:
    return ProviderSettings(name="ec2", credentials={"access_key_id": PlainSecret("AKIASPECSPECSPECSPEC"),
                                                     "secret_access_key": PlainSecret("specsecret")}, **more)


@pytest.mark.parametrize(
    ("url", "host", "port", "secure", "path"),
    [
        ("http://127.0.0.1:5000", "127.0.0.1", 5000, False, "/"),
        ("https://ec2.example.org", "ec2.example.org", 443, True, "/"),
        ("cloud.example:8773/services/compute", "cloud.example", 8773, True, "/services/compute"),
    ],
)
def test_endpoint_urls_become_host_port_and_tls(url, host, port, secure, path):
    assert parse_endpoint(url) == type(parse_endpoint(url))(host, port, secure, path)


def test_endpoint_that_is_not_http_is_refused():
    with pytest.raises(ProviderError, match="not an http"):
        parse_endpoint("ftp://example")


def test_ec2_uses_the_spec_credentials_region_and_signature_version_4():
    kwargs = ec2_driver_kwargs(aws(region="eu-west-1"), environ=AWS_ENV)
    assert kwargs["key"] == "AKIASPECSPECSPECSPEC" and kwargs["secret"] == "specsecret"
    assert kwargs["region"] == "eu-west-1" and kwargs["signature_version"] == "4"
    assert "host" not in kwargs


def test_ec2_falls_back_to_the_aws_environment_variables_and_session_token():
    settings = ProviderSettings(name="ec2")
    kwargs = ec2_driver_kwargs(
        settings, environ={**AWS_ENV, "AWS_SESSION_TOKEN": "tok", "AWS_DEFAULT_REGION": "us-west-2"}
    )
    assert (kwargs["key"], kwargs["secret"], kwargs["token"], kwargs["region"]) == (
        "AKIAENVENVENVENVENV1", "envsecret", "tok", "us-west-2")


def test_ec2_endpoint_points_the_driver_elsewhere():
    driver = build_ec2_driver(aws(endpoint="http://127.0.0.1:4566"), environ={})
    assert isinstance(driver, EC2NodeDriver)
    assert (driver.connection.host, driver.connection.port, driver.connection.secure) == ("127.0.0.1", 4566, False)
    assert driver.signature_version == "4"


def test_ec2_without_credentials_says_where_to_put_them():
    with pytest.raises(ProviderError, match="AWS_ACCESS_KEY_ID"):
        ec2_driver_kwargs(ProviderSettings(name="ec2"), environ={})


def test_ec2_unknown_region_is_refused_with_a_hint():
    with pytest.raises(ProviderError, match="unknown region 'mars-1'"):
        ec2_driver_kwargs(aws(region="mars-1"), environ={})


def test_eucalyptus_takes_its_endpoint_and_path_from_ec2_url():
    settings = ProviderSettings(name="eucalyptus")
    env = {"EC2_ACCESS_KEY": "AKIAEUCAEUCAEUCAEUCA", "EC2_SECRET_KEY": "eucasecret",
           "EC2_URL": "http://euca.example:8773/services/compute"}
    kwargs = eucalyptus_driver_kwargs(settings, environ=env)
    assert (kwargs["host"], kwargs["port"], kwargs["secure"], kwargs["path"]) == (
        "euca.example", 8773, False, "/services/compute")
    driver = build_driver(ProviderSettings(name="eucalyptus", endpoint="http://euca.example:8773/services/compute",
                                           credentials={"key": PlainSecret("k1234"), "secret": PlainSecret("s1234")}))
    assert isinstance(driver, EucNodeDriver) and driver.path == "/services/compute"


def test_openstack_reads_clouds_yaml_style_settings_for_keystone_v3():
    settings = ProviderSettings(
        name="openstack", region="RegionOne", credentials={"password": PlainSecret("pw")},
        extra={"auth": {"auth_url": "https://keystone.example:5000/v3", "username": "ops",
                        "project_name": "dr", "user_domain_name": "corp", "project_domain_id": "p-dom"}})
    arguments = openstack_driver_arguments(settings, environ={})
    assert arguments.args == ("ops", "pw")
    assert arguments.kwargs["ex_force_auth_url"] == "https://keystone.example:5000"
    assert arguments.kwargs["ex_force_auth_version"] == "3.x_password"
    assert (arguments.kwargs["ex_tenant_name"], arguments.kwargs["ex_domain_name"],
            arguments.kwargs["ex_tenant_domain_id"], arguments.kwargs["ex_force_service_region"]) == (
        "dr", "corp", "p-dom", "RegionOne")
    assert "pw" not in repr(arguments)


def test_openstack_reads_os_variables_and_builds_a_driver_without_calling_out():
    env = {"OS_AUTH_URL": "http://127.0.0.1:5000/v3", "OS_USERNAME": "u", "OS_PASSWORD": "p",
           "OS_PROJECT_NAME": "proj", "OS_REGION_NAME": "R2"}
    driver = build_openstack_driver(ProviderSettings(name="openstack"), environ=env)
    assert driver.connection._ex_force_auth_url == "http://127.0.0.1:5000"
    assert driver.connection._ex_tenant_name == "proj"


def test_openstack_application_credentials_win_over_passwords():
    env = {"OS_AUTH_URL": "http://k:5000", "OS_APPLICATION_CREDENTIAL_ID": "id1",
           "OS_APPLICATION_CREDENTIAL_SECRET": "s1", "OS_PASSWORD": "p"}
    arguments = openstack_driver_arguments(ProviderSettings(name="openstack"), environ=env)
    assert arguments.args == ("id1", "s1") and arguments.kwargs["ex_force_auth_version"] == "3.x_appcred"


def test_openstack_without_a_project_says_which_variables_to_set():
    with pytest.raises(ProviderError, match="OS_PROJECT_NAME"):
        openstack_driver_arguments(ProviderSettings(name="openstack"),
                                   environ={"OS_AUTH_URL": "http://k", "OS_USERNAME": "u", "OS_PASSWORD": "p"})


def test_gce_takes_email_and_project_from_the_service_account_file(tmp_path):
    key = tmp_path / "sa.json"
    key.write_text(json.dumps({"client_email": "drb@proj.iam.gserviceaccount.com", "project_id": "proj"}))
    arguments = gce_driver_arguments(ProviderSettings(name="gce", zone="europe-west1-b"),
                                     environ={"GOOGLE_APPLICATION_CREDENTIALS": str(key)})
    assert arguments.args == ("drb@proj.iam.gserviceaccount.com", str(key))
    assert arguments.kwargs == {"project": "proj", "auth_type": "SA", "datacenter": "europe-west1-b"}


def test_gce_without_a_key_names_the_variable():
    with pytest.raises(ProviderError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        gce_driver_arguments(ProviderSettings(name="gce"), environ={})


def test_other_libcloud_providers_pass_through_with_their_extra_settings():
    driver = build_driver(ProviderSettings(name="dummy", credentials={"key": PlainSecret("0")}))
    assert driver.name.lower().startswith("dummy")
    with pytest.raises(ProviderError, match="no compute driver"):
        build_driver(ProviderSettings(name="no-such-cloud"))


def test_buckets_and_launches_in_flight_come_from_the_spec_or_the_provider_familys_default():
    assert (bucket_for(aws()).per_second, bucket_for(aws()).burst) == (2, 1000)  # EC2's RunInstances bucket
    assert create_provider(aws(), SCOPE).max_parallel == 50
    custom = bucket_for(aws(rate=RateSettings(per_second=10, burst=20)))
    assert (custom.per_second, custom.burst) == (10, 20)
    assert create_provider(aws(max_parallel=3), SCOPE).max_parallel == 3
    generic = create_provider(ProviderSettings(name="dummy"), SCOPE)
    assert (generic.pacing.bucket.per_second, generic.pacing.bucket.burst, generic.max_parallel) == (5, 10, 8)


def test_the_registry_serves_each_family_by_name_and_any_other_name_through_generic_libcloud():
    assert [provider_class(name).__name__ for name in ("local", "ec2", "AWS", "eucalyptus", "openstack", "gce",
                                                        "dummy")] == [
        "LocalProvider", "EC2Provider", "EC2Provider", "EucalyptusProvider", "LibcloudProvider",
        "LibcloudProvider", "LibcloudProvider"]


def test_plain_secrets_do_not_print():
    assert "hunter2" not in repr(PlainSecret("hunter2"))


def test_settings_come_from_the_spec_provider_block_with_references_kept(monkeypatch):
    import os
    from types import SimpleNamespace

    class EnvReference:  # the shape of drbootstrap.spec's SecretRef: resolved only on reveal()
        def __init__(self, name):
            self.name = name

        def reveal(self):
            return os.environ[self.name]

    # Field for field the spec's ProviderSpec (drbootstrap/spec/models.py).
    block = SimpleNamespace(
        name="ec2", region="eu-west-1", zone="eu-west-1a", endpoint=None, network="10.213.0.0/24",
        credentials={"key": EnvReference("DRB_TEST_KEY"), "secret": EnvReference("DRB_TEST_SECRET")},
        rate=SimpleNamespace(per_second=2, burst=100), max_parallel=10,
        images={"master": "ami-1"}, sizes={"small": "t3.small"}, extra={"ex_keyname": "recovery"})
    settings = ProviderSettings.from_block(block)
    assert (settings.rate.per_second, settings.rate.burst, settings.max_parallel) == (2, 100, 10)
    assert settings.images == {"master": "ami-1"} and settings.zone == "eu-west-1a"
    monkeypatch.setenv("DRB_TEST_KEY", "AKIAFROMSPECREFERENC")
    monkeypatch.setenv("DRB_TEST_SECRET", "refsecret")
    kwargs = ec2_driver_kwargs(settings, environ={})
    assert (kwargs["key"], kwargs["secret"]) == ("AKIAFROMSPECREFERENC", "refsecret")
    assert "ex_keyname" not in kwargs  # a create_node keyword, not the constructor's


def test_extra_is_split_between_create_node_and_the_driver_constructor():
    from drbootstrap.providers.settings import split_extra

    constructor, create = split_extra(EC2NodeDriver, {"ex_keyname": "k", "ex_security_groups": ["g"],
                                                      "api_version": "2016-11-15"})
    assert create == {"ex_keyname": "k", "ex_security_groups": ["g"]}
    assert constructor == {"api_version": "2016-11-15"}


def test_openstack_accepts_the_key_and_secret_credentials_and_driver_extra_of_the_example_spec():
    settings = ProviderSettings(
        name="openstack", region="RegionOne", endpoint="https://keystone.example.net:5000",
        credentials={"key": PlainSecret("ops"), "secret": PlainSecret("pw")},
        extra={"ex_force_auth_url": "https://keystone.example.net:5000", "ex_force_auth_version": "3.x_password",
               "ex_tenant_name": "lab"})
    arguments = openstack_driver_arguments(settings, environ={})
    assert arguments.args == ("ops", "pw") and arguments.kwargs["ex_tenant_name"] == "lab"


def test_a_generic_libcloud_provider_makes_no_security_group_address_or_tagged_volume():
    provider = create_provider(ProviderSettings(name="dummy", credentials={"key": PlainSecret("0")}), SCOPE)
    node = provider.driver().list_nodes()[0]
    assert provider.prepare_environment() == ""
    assert provider.provision(node, "web01", is_master=True, volumes=[]) == []
    assert provider.describe_resources() == []


def test_boot_is_finished_when_cloud_init_says_so_on_the_console_and_failed_on_error():
    from libcloud.compute.base import Node
    from libcloud.compute.types import NodeState

    class ConsoleDriver:
        name, console = "fake", ""

        def ex_get_console_output(self, node):
            return {"output": self.console}

    driver = ConsoleDriver()
    provider = create_provider(ProviderSettings(name="openstack"), SCOPE, driver_factory=lambda: driver)

    def node(state):
        return Node("i-1", "web01", state, [], [], driver, extra={"error": "no bootable device"})

    assert not provider.boot_finished(node(NodeState.PENDING)).finished
    driver.console = "Cloud-init v. 22.4 running 'modules:final' at Wed, 25 Nov 2026 12:00:00 +0000."
    assert not provider.boot_finished(node(NodeState.RUNNING)).finished  # running, user-data not done
    driver.console += "\nCloud-init v. 22.4 finished at Wed, 25 Nov 2026 12:00:09 +0000. Up 9.1 seconds"
    assert provider.boot_finished(node(NodeState.RUNNING)).finished
    failed = provider.boot_finished(node(NodeState.ERROR))
    assert failed.failed and "no bootable device" in failed.detail


def test_the_local_provider_reads_the_end_of_boot_from_the_node_not_its_state():
    from libcloud.compute.base import Node
    from libcloud.compute.types import NodeState

    provider = create_provider(ProviderSettings(name="local", network="10.213.0.0/24"), SCOPE,
                               driver_factory=lambda: None)
    running = Node("n-1", "web01", NodeState.RUNNING, [], ["10.213.0.5"], None, extra={"boot": "booting"})
    assert not provider.boot_finished(running).finished
    running.extra["boot"] = "finished"
    assert provider.boot_finished(running).finished
    assert provider.addresses(running).reachable == "10.213.0.5" and provider.nodes_share_this_host


def test_ec2_takes_the_keys_of_a_named_profile_from_the_shared_credentials_file(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n"
                           "[recovery]\naws_access_key_id = AKIARECOVERY\naws_secret_access_key = r\n"
                           "aws_session_token = t\n")
    environ = {"AWS_SHARED_CREDENTIALS_FILE": str(credentials)}
    named = ec2_driver_kwargs(ProviderSettings(name="ec2", extra={"profile": "recovery"}), environ=environ)
    assert (named["key"], named["secret"], named["token"]) == ("AKIARECOVERY", "r", "t")
    assert "profile" not in named
    by_variable = ec2_driver_kwargs(ProviderSettings(name="ec2"), environ={**environ, "AWS_PROFILE": "recovery"})
    assert by_variable["key"] == "AKIARECOVERY"
    assert ec2_driver_kwargs(ProviderSettings(name="ec2"), environ=environ)["key"] == "AKIADEFAULT"


def test_ec2_profile_named_but_absent_names_the_profiles_there(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = A\naws_secret_access_key = s\n")
    with pytest.raises(ProviderError, match="'nosuch' does not exist") as raised:
        ec2_driver_kwargs(ProviderSettings(name="ec2", extra={"profile": "nosuch"}),
                          environ={"AWS_SHARED_CREDENTIALS_FILE": str(credentials)})
    assert "default" in str(raised.value.hint)


@pytest.mark.parametrize(("name", "good", "typo"), [("ec2", "ex_keyname", "ex_key_name"),
                                                    ("openstack", "ex_force_auth_version", "ex_force_auth_verison"),
                                                    ("gce", "ex_network", "ex_netwrok")])
def test_each_provider_knows_its_drivers_extra_keys(name, good, typo):
    accepted = provider_class(name).accepted_extra_keys(name)
    assert accepted is not None and good in accepted and typo not in accepted and "retry_max_attempts" in accepted


def test_openstack_takes_the_cloud_named_by_os_cloud_from_clouds_yaml(tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  lab:\n    region_name: RegionTwo\n    auth:\n"
                      "      auth_url: https://keystone.lab.example:5000/v3\n      username: ops\n"
                      "      password: from-clouds-yaml\n      project_name: recovery\n"
                      "      user_domain_name: LabDomain\n")
    environ = {"OS_CLOUD": "lab", "OS_CLIENT_CONFIG_FILE": str(clouds)}
    arguments = openstack_driver_arguments(ProviderSettings(name="openstack"), environ=environ)
    assert arguments.args == ("ops", "from-clouds-yaml")
    assert arguments.kwargs["ex_force_auth_url"] == "https://keystone.lab.example:5000"
    assert arguments.kwargs["ex_force_service_region"] == "RegionTwo"
    assert arguments.kwargs["ex_tenant_name"] == "recovery" and arguments.kwargs["ex_domain_name"] == "LabDomain"
    assert "cloud" not in arguments.kwargs and "auth" not in arguments.kwargs


def test_openstack_cloud_named_in_the_spec_but_absent_names_the_clouds_there(tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  lab: {auth: {auth_url: https://k:5000/v3}}\n")
    with pytest.raises(ProviderError, match="cloud 'prod' is not in") as raised:
        openstack_driver_arguments(ProviderSettings(name="openstack", extra={"cloud": "prod"}),
                                   environ={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert "lab" in str(raised.value.hint)
