"""Boot settings derived from the environment spec (examples/local.yaml as written)."""

from __future__ import annotations

import pytest

from drbootstrap.images.autosign import new_token
from drbootstrap.images.from_spec import master_boot_config, worker_boot_config
from drbootstrap.images.userdata import UserDataError, render_user_data
from drbootstrap.paths import project_root
from drbootstrap.spec import load_spec


@pytest.fixture(scope="module")
def spec():
    return load_spec(project_root() / "examples" / "local.yaml")


def test_worker_settings_take_role_broker_and_puppet_server_from_the_spec(spec):
    token = new_token()

    config = worker_boot_config(spec, "web02", master_address="10.213.0.2", autosign_token=token, agent_key="k")

    assert (config.role, config.image, config.domain) == ("web", "worker", "demo.internal")
    assert (config.broker_host, config.broker_port, config.broker_protocol) == ("10.213.0.2", 61613, "stomp")
    assert config.puppet_server == "controller.demo.internal" and config.puppet_mode == "server"
    assert token in render_user_data(config).decode()


def test_master_settings_name_the_controller_and_carry_no_token(spec):
    config = master_boot_config(spec, agent_key_reference="/etc/drbootstrap/psk")

    assert (config.hostname, config.role, config.image) == ("controller", "master", "master")
    assert config.broker_host == "controller.demo.internal" and config.autosign_token is None


def test_worker_without_the_token_the_spec_asks_for_is_refused(spec):
    with pytest.raises(UserDataError, match="db01: the spec asks for token autosign but no token was issued"):
        worker_boot_config(spec, "db01", master_address="10.213.0.2")


def test_hostname_not_in_the_spec_is_refused_listing_the_workers(spec):
    with pytest.raises(UserDataError, match=r"no node group names 'web09' \(the spec's workers are: db01, web01"):
        worker_boot_config(spec, "web09", master_address="10.213.0.2", autosign_token="t")
