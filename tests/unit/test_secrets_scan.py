"""The secrets scan finds a planted secret in a log, an open file, argv and a non-root environ."""

import os
import subprocess

from tests.support.secrets_scan import KnownSecret, scan_for_secrets

SECRET = KnownSecret("the PSK", "0123456789abcdef-test-psk-value")


def test_a_secret_in_a_trace_or_an_open_file_is_reported_by_name_not_value(tmp_path):
    (tmp_path / "nodes" / "web01").mkdir(parents=True)
    (tmp_path / "nodes" / "web01" / "boot.log").write_text(f"starting with {SECRET.value}\n")
    shared = tmp_path / "agent.cfg"
    shared.write_text(SECRET.value)
    shared.chmod(0o644)
    private = tmp_path / "psk"
    private.write_text(SECRET.value)
    private.chmod(0o600)
    (tmp_path / "clean.log").write_text("nothing here\n")

    findings = scan_for_secrets([SECRET], tmp_path, processes=False)

    assert sorted(findings) == sorted([
        f"{tmp_path / 'agent.cfg'}: mode 0644 (not 0600) holds the PSK",
        f"{tmp_path / 'nodes' / 'web01' / 'boot.log'}: a trace holds the PSK",
    ])
    assert all(SECRET.value not in line for line in findings)


def test_a_secret_in_a_process_argument_or_a_non_root_environment_is_reported(tmp_path):
    sleeper = ["/bin/sh", "-c", "sleep 30", "sh"]
    in_argv = subprocess.Popen([*sleeper, SECRET.value])
    as_nobody = None
    if os.geteuid() == 0:  # a process of another user, whose environ that user can read
        as_nobody = subprocess.Popen(sleeper, env={"DRB_KEY": SECRET.value}, user=65534, group=65534)
    try:
        findings = scan_for_secrets([SECRET], tmp_path)
    finally:
        for process in (in_argv, as_nobody):
            if process is not None:
                process.kill()
                process.wait()
    assert any(f.startswith(f"process {in_argv.pid} ") and "arguments hold the PSK" in f for f in findings)
    if as_nobody is not None:
        assert any(f.startswith(f"process {as_nobody.pid} ") and "environment hold the PSK" in f for f in findings)


def test_the_environment_s_ed25519_private_keys_are_known_secrets_and_found_in_a_trace(tmp_path):
    from drbootstrap.messaging.keys import provision_environment_keys
    from tests.support.secrets_scan import environment_secrets

    keys = provision_environment_keys(tmp_path / "environments" / "demo" / "keys", ["web01", "db01"])
    known = environment_secrets(tmp_path, "demo")
    assert sorted(s.name for s in known) == [
        "the ed25519 signing key keys/nodes/db01.pem", "the ed25519 signing key keys/nodes/web01.pem",
        "the ed25519 signing key keys/operator.pem"]
    (tmp_path / "agent.log").write_text(f"loaded {keys.nodes['web01'].private_pem}")
    assert scan_for_secrets(known, tmp_path, processes=False) == [
        f"{tmp_path / 'agent.log'}: a trace holds the ed25519 signing key keys/nodes/web01.pem"]
