"""Per-client keys wired into `up`: which scheme an environment signs with, what each node's
user-data carries (its own key only, the operator's public key, the policy), and that the agent
config boot.sh builds from it refuses a request signed with another node's key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.daemon import make_agent_protocol
from drbootstrap.errors import SecurityError
from drbootstrap.executor.build import client_signing
from drbootstrap.executor.secrets import ED25519, HMAC_SHA256, load_or_create_psk, signing_scheme
from drbootstrap.images.from_spec import master_boot_config, worker_boot_config
from drbootstrap.images.userdata import EC2_USER_DATA_LIMIT, cloud_config, render_user_data
from drbootstrap.messaging.envelope import Request
from drbootstrap.messaging.keys import provision_environment_keys
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.security import AuthorizationPolicy, load_signer
from drbootstrap.paths import EnvironmentPaths, project_root
from drbootstrap.spec import load_spec
from drbootstrap.spec.models import SecuritySpec

MASTER_ADDRESS = "10.213.0.2"


@pytest.fixture(scope="module")
def spec():
    return load_spec(project_root() / "examples" / "local.yaml")


def with_signing(spec, signing):
    return spec.model_copy(update={"security": spec.security.model_copy(update={"signing": signing})})


def test_a_new_environment_signs_with_per_client_keys(spec, tmp_path):
    assert SecuritySpec().signing is None
    assert signing_scheme(spec, EnvironmentPaths(tmp_path, spec.environment)) == ED25519


def test_an_environment_whose_state_holds_a_psk_keeps_hmac(spec, tmp_path):
    paths = EnvironmentPaths(tmp_path, spec.environment)
    load_or_create_psk(spec, tmp_path)  # what an earlier `up` left
    assert signing_scheme(spec, paths) == HMAC_SHA256
    assert signing_scheme(with_signing(spec, "ed25519"), paths) == ED25519  # explicit choice wins


def test_an_environment_with_keys_keeps_them_although_its_psk_exists_for_autosign(spec, tmp_path):
    paths = EnvironmentPaths(tmp_path, spec.environment)
    signing = client_signing(signing_scheme(spec, paths), spec, paths, "")
    load_or_create_psk(spec, tmp_path)
    assert signing_scheme(spec, paths) == ED25519
    again = client_signing(signing_scheme(spec, paths), spec, paths, "")
    assert again.key_file == signing.key_file == paths.keys / "operator.pem"
    assert again.trusted_keys_dir == paths.keys / "client-trusted"
    assert signing.keys is not None and set(signing.keys.nodes) == {spec.master.hostname, *spec.worker_hostnames()}
    assert sorted(p.stem for p in again.trusted_keys_dir.glob("*.pub")) == sorted(signing.keys.nodes)


def test_hmac_client_signs_with_the_psk_file_and_trusts_no_key_dir(spec, tmp_path):
    paths = EnvironmentPaths(tmp_path, spec.environment)
    signing = client_signing(HMAC_SHA256, spec, paths, "0123456789abcdef0123456789abcdef")
    assert signing.keys is None and signing.trusted_keys_dir is None
    assert signing.key_file.stat().st_mode & 0o777 == 0o600 and not paths.keys.exists()


def materialise(config, root: Path) -> dict[str, Path]:
    """Write the user-data's files under ROOT as a node would; return them by node path."""
    written = {}
    for entry in cloud_config(config)["write_files"]:
        path = root / entry["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(entry["content"])
        path.chmod(int(entry["permissions"], 8))
        written[entry["path"]] = path
    return written


def node_config(spec, keys, hostname, root: Path):
    dirs = {"config_dir": str(root / hostname / "etc")}
    key = {"node_key": keys.nodes[hostname], "operator_public_key": keys.operator_public_pem}
    if hostname == spec.master.hostname:
        return master_boot_config(spec, **key, **dirs)
    return worker_boot_config(spec, hostname, master_address=MASTER_ADDRESS, autosign_token="t" * 40, **key, **dirs)


def key_body(pem: str) -> str:
    """The base64 line of an ed25519 PEM key (its header lines are the same for every key)."""
    return pem.splitlines()[1]


def test_each_node_user_data_carries_its_own_key_only_and_the_operator_public_key(spec, tmp_path):
    hostnames = [spec.master.hostname, *spec.worker_hostnames()]
    keys = provision_environment_keys(tmp_path / "keys", hostnames)
    operator_private = key_body(keys.operator_key.read_text())
    for hostname in hostnames:
        config = node_config(spec, keys, hostname, tmp_path)
        data = render_user_data(config, allow_gzip=False)
        assert len(data) <= EC2_USER_DATA_LIMIT
        text = data.decode()
        assert key_body(keys.nodes[hostname].private_pem) in text
        others = [key_body(k.private_pem) for name, k in keys.nodes.items() if name != hostname]
        assert not any(other in text for other in others) and operator_private not in text
        files = materialise(config, tmp_path / "node")
        key_file = files[f"{config.config_dir}/agent.key"]
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert files[f"{config.config_dir}/trusted/operator.pub"].read_text() == keys.operator_public_pem


def agent_protocol_as_boot_sh_writes_it(spec, keys, hostname, root: Path):
    """agent.yaml as boot.sh writes it: its key_file line, then the user-data's settings fragment."""
    config = node_config(spec, keys, hostname, root)
    files = materialise(config, root)
    fragment = files[config.agent_keys_settings_path].read_text()
    raw = yaml.safe_load(f"identity: {hostname}\nkey_file: {files[config.agent_key_path]}\n" + fragment)
    assert raw["key_id"] == keys.nodes[hostname].key_id and raw["trusted_keys_dir"] == config.trusted_keys_dir
    agent = agent_config_from_dict(raw)
    agent.trusted_keys_dir = str(root / config.trusted_keys_dir.lstrip("/"))  # materialised under root
    return make_agent_protocol(agent), AuthorizationPolicy.from_config(agent.policy)


def request(request_id: str) -> Request:
    return Request(request_id=request_id, sender_id="c", caller_id="", agent="rpcutil", action="ping",
                   created_at=time.time(), reply_to="/queue/drb.mcollective.reply.c")


def test_a_request_signed_with_web01s_key_is_refused_by_db01_and_the_operators_accepted(spec, tmp_path):
    keys = provision_environment_keys(tmp_path / "keys", [spec.master.hostname, *spec.worker_hostnames()])
    db, db_policy = agent_protocol_as_boot_sh_writes_it(spec, keys, "db01", tmp_path)
    operator = NativeProtocol(load_signer(keys.operator_key, trusted_dir=keys.client_trusted_dir))
    accepted = db.decode_request(operator.request_frames(request("r1"))[0].body, {})
    assert db_policy.allows(accepted.caller_id, "puppet", "runonce")
    web01 = NativeProtocol(load_signer(keys.operator_key.parent / "nodes" / "web01.pem", key_id="web01"))
    with pytest.raises(SecurityError, match="untrusted"):
        db.decode_request(web01.request_frames(request("r2"))[0].body, {})
    assert not db_policy.allows("key=web01", "rpcutil", "ping")


def test_boot_scripts_append_the_key_settings_to_the_agent_config():
    for image in ("master", "worker"):
        script = (project_root() / "images" / image / "boot.sh").read_text()
        assert 'cat "$DRB_AGENT_KEYS_SETTINGS_FILE" >>"$NODE_DIR/agent.yaml"' in script
        assert script.index("DRB_AGENT_KEYS_SETTINGS_FILE\" >>") < script.index("nohup $DRB agent")
