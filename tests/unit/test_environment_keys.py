"""Per-client ed25519 keys: the operator's requests are accepted and answered by a node's agent;
another node's key is refused (it is not trusted), and provisioning twice keeps the same keys."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from drbootstrap.errors import SecurityError
from drbootstrap.messaging.envelope import Reply, Request
from drbootstrap.messaging.keys import agent_key_settings, provision_environment_keys
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.security import AuthorizationPolicy, load_signer


def request(**overrides) -> Request:
    values = dict(request_id="r1", sender_id="c", caller_id="", agent="rpcutil", action="ping",
                  created_at=time.time(), reply_to="/queue/drb.mcollective.reply.c")
    values.update(overrides)
    return Request(**values)


def node_protocol(keys, tmp_path, name):
    node_dir = tmp_path / name
    trusted = node_dir / "trusted"
    trusted.mkdir(parents=True)
    (trusted / "operator.pub").write_text(keys.operator_public_pem)
    (node_dir / "agent.pem").write_text(keys.nodes[name].private_pem)
    settings = agent_key_settings(keys.nodes[name], str(node_dir / "agent.pem"), str(trusted))
    signer = load_signer(node_dir / "agent.pem", key_id=settings["key_id"], trusted_dir=trusted)
    return NativeProtocol(signer), AuthorizationPolicy.from_config(settings["policy"])


def test_operator_is_accepted_and_trusted_back_and_a_node_cannot_sign_for_another(tmp_path):
    keys = provision_environment_keys(tmp_path / "keys", ["web01", "db01"])
    assert keys.operator_key.stat().st_mode & 0o777 == 0o600
    operator = NativeProtocol(load_signer(keys.operator_key, trusted_dir=keys.client_trusted_dir))
    web, web_policy = node_protocol(keys, tmp_path, "web01")
    db, _ = node_protocol(keys, tmp_path, "db01")
    decoded = web.decode_request(operator.request_frames(request())[0].body, {})
    assert decoded.caller_id == "key=operator" and web_policy.allows(decoded.caller_id, "reboot", "reboot")
    reply = operator.decode_reply(web.reply_frame(Reply("r1", "web01", "rpcutil"), decoded).body, {})
    assert reply.sender_id == "web01"
    with pytest.raises(SecurityError, match="untrusted"):
        web.decode_request(db.request_frames(request(request_id="r2"))[0].body, {})
    assert not web_policy.allows("key=db01", "rpcutil", "ping")


def test_provisioning_again_keeps_every_key(tmp_path):
    first = provision_environment_keys(tmp_path, ["web01"])
    again = provision_environment_keys(tmp_path, ["web01", "db01"])
    assert again.nodes["web01"] == first.nodes["web01"] and set(again.nodes) == {"web01", "db01"}
    assert first.operator_public_pem == again.operator_public_pem


def test_keygen_writes_a_private_pem_and_its_public_key(tmp_path):
    from drbootstrap.cli.agent_commands import keygen

    result = CliRunner().invoke(keygen, [str(tmp_path / "ops.pem")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ops.pem").stat().st_mode & 0o777 == 0o600 and (tmp_path / "ops.pub").exists()
    assert CliRunner().invoke(keygen, [str(tmp_path / "ops.pem")]).exit_code == 2
