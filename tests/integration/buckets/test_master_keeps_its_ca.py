"""A rebuilt master keeps its Puppet CA (master.restore.ca), on the local cloud with Puppet in server
mode and libcloud's local storage as the bucket: asked before any backup of the master exists, `up`
refuses with exit 13 and launches nothing; `up`, `backup` (the master's state sealed in the bucket),
`down`, `up` with master.restore: the CA certificate's fingerprint is the same, the certificate the
old web01 held is still valid under it, the report names the master state restored and its age,
and the CA key is in no log, journal, report or process."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.support.secrets_scan import KnownSecret, environment_secrets, scan_for_secrets

pytestmark = [pytest.mark.integration, E2E_GATE]
SEALING_KEY = secrets.token_hex(32)
SPEC = """\
environment: demo
domain: demo.internal
provider:
  name: local
  network: 10.213.0.0/24
master:
  puppet: {mode: server}
RESTORE
buckets:
  driver: local
  path: HOME/buckets
  container: backups
  prefix: drb
  encryption_key: '${env:DRB_TEST_MASTER_SEALING_KEY}'
nodes:
  - role: web
    hostnames: [web01]
    puppet:
      classes: [role::web]
"""


@pytest.fixture(scope="module")
def env():
    environment = make_environment(SPEC, "keepca")
    text = environment.spec_file.read_text().replace("HOME", str(environment.home))
    environment.spec_file.write_text(text.replace("RESTORE\n", ""))
    environment.keep_spec = environment.spec_file.with_name("keep-ca.yaml")
    environment.keep_spec.write_text(text.replace("RESTORE\n", "  restore: {ca: true}\n"))
    plain_env = environment.env
    environment.env = lambda: {**plain_env(), "DRB_TEST_MASTER_SEALING_KEY": SEALING_KEY}
    try:
        yield environment
    finally:
        tear_down(environment)


def ca_dir(env):
    return env.paths.nodes / "controller" / "var" / "puppet" / "ca"


def fingerprint(path) -> str:
    out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(path)],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return out.strip().split("=", 1)[1]


def test_keep_ca_with_no_backup_of_the_master_refuses_with_exit_13_and_launches_nothing(env):
    refused = env.cli("up", str(env.keep_spec))

    assert refused.returncode == 13, refused.stdout[-2000:] + refused.stderr[-2000:]
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "master.restore (ca): environment keepca has no good backup of its master's state" \
        in lines[0] and "nothing launched" in lines[0]
    assert env.live_hostnames() == []


def test_a_rebuilt_master_keeps_its_ca_and_the_old_certificates_stay_valid(env):
    first = env.cli("up", str(env.spec_file))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    before = fingerprint(ca_dir(env) / "ca_crt.pem")
    ca_key = (ca_dir(env) / "ca_key.pem").read_text()
    env.ca_key_lines = [line for line in ca_key.splitlines() if len(line) >= 32 and not line.startswith("-----")]
    old_web01 = env.home / "web01-old.pem"
    old_web01.write_bytes((env.paths.nodes / "web01" / "var" / "puppet" / "ssl" / "certs" /
                           "web01.demo.internal.pem").read_bytes())

    taken = env.cli("backup", str(env.spec_file))
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert "controller/master-state: master state" in taken.stdout and "sealed" in taken.stdout
    stored = list((env.home / "buckets" / "backups").rglob("*.dump"))
    assert stored and all(env.ca_key_lines[1].encode() not in path.read_bytes() for path in stored)

    assert env.cli("down", str(env.spec_file), "--yes").returncode == 0
    again = env.cli("up", str(env.keep_spec))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]

    assert fingerprint(ca_dir(env) / "ca_crt.pem") == before
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(ca_dir(env) / "ca_crt.pem"), str(old_web01)],
                              capture_output=True, text=True, timeout=30, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    [master] = [b for b in env.report()["backups"] if b["kind"] == "master"]
    assert master["hostname"] == "controller" and master["volume"] == "master-state"
    assert master["rpo_seconds"] is not None and master["verified"] == "ok"
    boot = next(s["detail"] for n in env.report()["nodes"] if n["hostname"] == "controller"
                for s in n["steps"] if s["step"] == "boot")
    assert "master state (ca)" in boot and "restored before puppetserver started" in boot
    assert not (env.paths.nodes / "controller" / "etc" / "master-state.json").exists()  # the fetch file is gone


def test_the_ca_key_is_in_no_log_journal_report_or_process(env):
    known = environment_secrets(env.home / "state", env.name)
    known += [KnownSecret(f"line {i} of the Puppet CA key", line) for i, line in enumerate(env.ca_key_lines, 1)]
    findings = scan_for_secrets(known, env.home / "state")
    # Puppet keeps its CA key 0640 for its own group (as it made it): that mode is Puppet's, not a trace.
    assert [f for f in findings if "Puppet CA key" not in f or "a trace holds" in f or "process" in f] == []
