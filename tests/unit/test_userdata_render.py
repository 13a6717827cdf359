"""cloud-init user-data for master and workers: valid, small, runnable, no one else's secrets."""

from __future__ import annotations

import gzip
import secrets
import shlex

import pytest
import yaml

from drbootstrap.images.userdata import (
    EC2_USER_DATA_LIMIT,
    NodeBootConfig,
    UserDataError,
    UserDataTooLarge,
    cloud_config,
    node_env,
    render_user_data,
)
from drbootstrap.paths import project_root

LOCAL_CLOUD_KEYS = {"write_files", "bootcmd", "runcmd"}


def worker(hostname: str = "web01", environment: str = "demo", **overrides) -> NodeBootConfig:
    values = dict(
        environment=environment, domain=f"{environment}.internal", hostname=hostname, role="web", image="worker",
        master_address="10.213.0.2", controller_name=f"controller.{environment}.internal",
        broker_host="10.213.0.2", broker_port=61613,
        agent_key=f"-----BEGIN PRIVATE KEY-----\n{secrets.token_hex(32)}\n-----END PRIVATE KEY-----\n",
        autosign_token=secrets.token_urlsafe(24),
    )
    values.update(overrides)
    return NodeBootConfig(**values)


def parsed(data: bytes) -> dict:
    text = data.decode()
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def test_worker_user_data_is_cloud_config_with_files_and_the_boot_command():
    config = worker()
    document = parsed(render_user_data(config))

    assert set(document) <= LOCAL_CLOUD_KEYS
    paths = {f["path"]: f for f in document["write_files"]}
    assert paths["/etc/drbootstrap/agent.key"]["permissions"] == "0600"
    assert paths["/etc/drbootstrap/autosign.token"]["content"].strip() == config.autosign_token
    assert paths["/etc/drbootstrap/node.env"]["permissions"] == "0644"
    assert len(document["runcmd"]) == 1
    assert "sh /usr/share/drbootstrap/images/worker/boot.sh /etc/drbootstrap" in document["runcmd"][0]


def test_rendered_node_env_is_sh_that_yields_the_settings():
    config = worker(role="db", hostname="db01")
    values = dict(line.split("=", 1) for line in node_env(config).splitlines() if not line.startswith("#"))

    assert shlex.split(values["DRB_HOSTNAME"]) == ["db01"]
    assert shlex.split(values["DRB_MASTER_ADDRESS"]) == ["10.213.0.2"]
    assert shlex.split(values["DRB_PUPPET_SERVER"]) == ["controller.demo.internal"]
    assert config.autosign_token not in node_env(config)
    assert "PRIVATE KEY" not in node_env(config)


def test_user_data_holds_only_this_nodes_secrets():
    node_a = worker("web01")
    node_b = worker("web02")
    other_environment = worker("web01", environment="prod")

    text = render_user_data(node_a).decode()

    assert node_a.autosign_token in text and node_a.agent_key.splitlines()[1] in text
    assert node_b.autosign_token not in text
    assert node_b.agent_key.splitlines()[1] not in text
    assert other_environment.agent_key.splitlines()[1] not in text


def test_master_user_data_runs_the_master_boot_script_and_has_no_autosign_token():
    master = NodeBootConfig(
        environment="demo", domain="demo.internal", hostname="controller", role="master", image="master",
        broker_host="controller.demo.internal", agent_key_reference="/etc/drbootstrap/psk",
    )
    document = parsed(render_user_data(master))

    assert "images/master/boot.sh" in document["runcmd"][0]
    assert [f["path"] for f in document["write_files"]] == ["/etc/drbootstrap/node.env"]


def test_user_data_fits_the_ec2_limit_even_with_the_boot_script_embedded():
    script = (project_root() / "images" / "worker" / "boot.sh").read_text()

    data = render_user_data(worker(embed_boot_script=script))

    assert len(data) <= EC2_USER_DATA_LIMIT
    assert parsed(data)["write_files"][-1]["content"] == script


def test_user_data_over_the_limit_is_gzipped_when_allowed():
    padding = "# filler line that compresses well\n" * 600
    data = render_user_data(worker(embed_boot_script=padding))

    assert data[:2] == b"\x1f\x8b" and len(data) <= EC2_USER_DATA_LIMIT
    assert yaml.safe_load(gzip.decompress(data).decode())["runcmd"]


def test_user_data_too_big_even_gzipped_is_a_clear_error():
    incompressible = secrets.token_hex(20000)

    expected = r"user-data for web01 is \d+ bytes \(\d+ gzipped\), over the cloud's limit of 16384"
    with pytest.raises(UserDataTooLarge, match=expected):
        render_user_data(worker(embed_boot_script=incompressible))


def test_too_big_without_gzip_is_an_error():
    with pytest.raises(UserDataTooLarge):
        render_user_data(worker(embed_boot_script="x" * 20000), allow_gzip=False)


def test_extra_parts_make_a_mime_multipart_with_our_cloud_config_first():
    data = render_user_data(worker(), extra_parts=[("text/x-shellscript", "#!/bin/sh\necho site hook\n")])
    text = data.decode()

    assert text.startswith("Content-Type: multipart/mixed")
    assert text.index("text/cloud-config") < text.index("text/x-shellscript")


def test_secrets_are_not_in_the_config_repr():
    config = worker()

    assert config.autosign_token not in repr(config)
    assert "PRIVATE KEY" not in repr(config)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hostname": "Web_01"}, "hostname 'Web_01' is not a DNS label"),
        ({"master_address": None}, "a worker needs the master's address"),
        ({"master_address": "controller"}, "master address 'controller' is not an IP address"),
        ({"agent_key_reference": "/etc/drbootstrap/psk"}, "not both"),
    ],
)
def test_invalid_boot_settings_are_refused_naming_the_node(overrides, message):
    with pytest.raises(UserDataError, match=message) as refused:
        worker(**overrides)
    assert str(refused.value).startswith("boot recipe for ")


def test_cloud_config_runcmd_logs_into_the_node_dir():
    assert ">>/var/lib/drbootstrap/node/boot.log 2>&1" in cloud_config(worker())["runcmd"][0]


def test_boot_script_runs_again_on_later_boots_from_bootcmd_once_its_settings_exist():
    document = cloud_config(worker())

    assert document["bootcmd"] == [f"if [ -f /etc/drbootstrap/node.env ] && [ \"${{DRB_CLOUD_FIRST_BOOT:-0}}\" != 1 ]; "
                                   f"then {document['runcmd'][0]}; fi"]


def test_the_local_clouds_first_boot_of_a_relaunched_node_runs_boot_sh_once_not_twice(tmp_path):
    """A node relaunched under its old name on the local cloud finds the dead one's node.env (its
    files live on this host): bootcmd must not run boot.sh on that first boot with the old
    settings, beside runcmd's run with the new ones (two agents, one trusting stale keys)."""
    import subprocess

    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "node.env").write_text("# the previous instance's\n")
    document = cloud_config(worker(config_dir=str(config_dir), node_dir=str(tmp_path / "var")))
    bootcmd = document["bootcmd"][0].replace(document["runcmd"][0], "echo BOOT")

    def runs(first_boot: str | None) -> bool:
        env = {"PATH": "/usr/bin:/bin", **({"DRB_CLOUD_FIRST_BOOT": first_boot} if first_boot else {})}
        done = subprocess.run(["sh", "-c", bootcmd], env=env, capture_output=True, text=True, check=True)
        return done.stdout == "BOOT\n"

    assert not runs("1")  # the first boot of this instance: runcmd runs boot.sh, after write_files
    assert runs("0")  # a later boot (a reboot): bootcmd runs it
    assert runs(None)  # cloud-init on a real cloud: node.env exists on later boots only (a new disk)


def test_local_cloud_interpreter_runs_every_key_of_the_user_data():
    from drbootstrap.providers.local.cloudinit import parse_cloud_config, render_per_instance, user_data_kind

    text = render_user_data(worker()).decode()

    assert user_data_kind(text) == "cloud-config"
    parsed_config = parse_cloud_config(text)
    assert parsed_config.ignored_keys == []
    assert "images/worker/boot.sh" in render_per_instance(parsed_config)


def test_operator_public_key_reaches_the_master_as_an_authorized_keys_file_and_sshd_setting():
    public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExample operator@desk"
    config = worker(hostname="controller", role="master", image="master", ssh_authorized_keys=(public,))
    files = {f["path"]: f for f in parsed(render_user_data(config))["write_files"]}
    assert files["/etc/drbootstrap/authorized_keys"] == {
        "path": "/etc/drbootstrap/authorized_keys", "permissions": "0644", "content": public + "\n"}
    assert "DRB_SSH_AUTHORIZED_KEYS_FILE=/etc/drbootstrap/authorized_keys" in node_env(config)


def test_a_private_key_given_as_authorized_key_is_refused_before_it_reaches_user_data():
    with pytest.raises(UserDataError, match="OpenSSH public key"):
        worker(ssh_authorized_keys=("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n",))


def test_node_env_names_the_python_the_node_runs_drbootstrap_with():
    assert "DRB_PYTHON=/opt/venv/bin/python" in node_env(worker(python="/opt/venv/bin/python"))
    assert "DRB_PYTHON=python3" in node_env(worker())
