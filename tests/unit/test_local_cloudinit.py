"""The #cloud-config interpreter renders write_files/bootcmd/runcmd to shell with cloud-init's frequencies."""

import os
import subprocess

import pytest

from drbootstrap.errors import ProviderError
from drbootstrap.providers.local import cloudinit

DOC = """#cloud-config
write_files:
  - path: {root}/etc/app.conf
    content: "name = web01\\nquote = it's\\n"
    permissions: '0600'
  - path: {root}/bin/blob
    content: aGVsbG8=
    encoding: b64
bootcmd:
  - echo boot >> {root}/log
runcmd:
  - [sh, -c, "echo run >> {root}/log"]
  - echo second >> {root}/log
packages: [nginx]
"""


def test_user_data_kinds_are_script_cloud_config_or_none():
    assert cloudinit.user_data_kind(None) == "none"
    assert cloudinit.user_data_kind("#!/bin/sh\ntrue\n") == "script"
    assert cloudinit.user_data_kind("#cloud-config\nruncmd: []\n") == "cloud-config"
    with pytest.raises(ProviderError, match="#cloud-config"):
        cloudinit.user_data_kind("echo hi\n")


def test_rendered_scripts_write_files_and_run_commands_in_order(tmp_path):
    config = cloudinit.parse_cloud_config(DOC.format(root=tmp_path))
    assert config.ignored_keys == ["packages"]
    subprocess.run(["sh", "-c", cloudinit.render_per_boot(config)], check=True)
    subprocess.run(["sh", "-c", cloudinit.render_per_instance(config)], check=True)
    conf = tmp_path / "etc" / "app.conf"
    assert conf.read_text() == "name = web01\nquote = it's\n"
    assert oct(os.stat(conf).st_mode & 0o777) == "0o600"
    assert (tmp_path / "bin" / "blob").read_bytes() == b"hello"
    assert (tmp_path / "log").read_text().split() == ["boot", "run", "second"]


@pytest.mark.parametrize("left_before", [None, 0o644])
def test_a_secret_file_is_never_readable_by_others_while_it_is_written(tmp_path, left_before):
    """A node's files live on this host: a key must be 0600 from before its first byte, whether the
    file is new or left (0644) by an earlier instance under the same name."""
    import shutil

    key = tmp_path / "etc" / "agent.key"
    if left_before is not None:
        key.parent.mkdir()
        key.write_text("old")
        key.chmod(left_before)
    shims = tmp_path / "shims"
    shims.mkdir()
    record = tmp_path / "modes"
    # base64 runs once the shell has opened its output: the mode it sees is the mode while writing.
    (shims / "base64").write_text(f'#!/bin/sh\nstat -c %a {key} >>{record}\nexec {shutil.which("base64")} "$@"\n')
    (shims / "base64").chmod(0o755)
    config = cloudinit.parse_cloud_config(
        f"#cloud-config\nwrite_files:\n  - path: {key}\n    content: secret\n    permissions: '0600'\n")
    env = {"PATH": f"{shims}:/usr/bin:/bin"}
    subprocess.run(["sh", "-c", cloudinit.render_per_instance(config)], check=True, env=env)
    assert record.read_text().split() == ["600"]
    assert key.read_text() == "secret" and oct(key.stat().st_mode & 0o777) == "0o600"


def test_a_failing_command_stops_the_script_with_its_status(tmp_path):
    config = cloudinit.parse_cloud_config(f"#cloud-config\nruncmd:\n  - exit 3\n  - touch {tmp_path}/no\n")
    result = subprocess.run(["sh", "-c", cloudinit.render_per_instance(config)])
    assert result.returncode == 3
    assert not (tmp_path / "no").exists()


def test_to_text_round_trips_through_the_parser():
    config = cloudinit.CloudConfig(
        write_files=[cloudinit.WriteFile(path="/etc/x", content="a", permissions="0640")],
        bootcmd=["echo b"], runcmd=[["echo", "r"]],
    )
    text = config.to_text()
    assert text.startswith("#cloud-config\n")
    again = cloudinit.parse_cloud_config(text)
    assert again.write_files == config.write_files
    assert again.runcmd == [["echo", "r"]] and again.bootcmd == ["echo b"]


@pytest.mark.parametrize("text, message", [
    ("#cloud-config\nruncmd: [unclosed\n", "not valid YAML"),
    ("#cloud-config\n- a\n", "mapping"),
    ("#cloud-config\nruncmd: echo hi\n", "runcmd must be a list"),
    ("#cloud-config\nwrite_files:\n  - content: x\n", "write_files"),
])
def test_malformed_cloud_config_is_refused_with_the_reason(text, message):
    with pytest.raises(ProviderError, match=message):
        cloudinit.parse_cloud_config(text)


def test_ignored_keys_are_echoed_as_one_quoted_word():
    """A key with a quote would have broken the echo line's shell (non-text keys are refused)."""
    import subprocess

    from drbootstrap.providers.local.cloudinit import parse_cloud_config, render_per_boot

    config = parse_cloud_config("#cloud-config\n\"it's\": y\nzz: 1\n")
    script = render_per_boot(config)
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout == "drb-cloud: cloud-config keys ignored here: it's, zz\n"
