"""`protocol: mcollective` in the agent config and `--protocol mcollective` on the client pick the compat codec."""

from __future__ import annotations

import pytest

from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.daemon import make_agent_protocol
from drbootstrap.errors import MessagingError, SecurityError
from drbootstrap.messaging.client import ClientConfig, make_protocol
from drbootstrap.messaging.mcollective import McollectiveProtocol


@pytest.fixture
def psk_file(tmp_path):
    path = tmp_path / "psk"
    path.write_text("shared-by-mco\n")
    return path


def test_agent_config_protocol_mcollective_builds_the_compat_codec(psk_file):
    config = agent_config_from_dict({"identity": "web01", "key_file": str(psk_file), "protocol": "mcollective"})
    assert isinstance(make_agent_protocol(config), McollectiveProtocol)


def test_client_protocol_mcollective_builds_the_compat_codec(psk_file):
    config = ClientConfig(brokers=["stomp://127.0.0.1:1"], key_file=psk_file, protocol="mcollective")
    assert isinstance(make_protocol(config), McollectiveProtocol)


def test_unknown_protocol_name_says_which_exist(psk_file):
    config = ClientConfig(brokers=["stomp://127.0.0.1:1"], key_file=psk_file, protocol="mco")
    with pytest.raises(MessagingError, match="unknown protocol 'mco'") as refused:
        make_protocol(config)
    assert "native or mcollective" in str(refused.value)


def test_mcollective_mode_without_psk_file_says_what_to_set():
    config = agent_config_from_dict({"identity": "web01", "protocol": "mcollective"})
    with pytest.raises(SecurityError, match="no psk file"):
        make_agent_protocol(config)


def test_ping_command_rejects_an_unknown_protocol(cli):
    result = cli("ping", "--protocol", "carrier-pigeon", "--broker", "stomp://127.0.0.1:1")
    assert result.exit_code != 0 and "carrier-pigeon" in result.stderr
