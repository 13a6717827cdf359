"""The master's own state through the bucket, with the master's dumps agent in-process and libcloud's
real local storage driver: archived on the master, streamed sealed, chosen and checked before
launch, fetched once by the rebuilt master and put back with its CA key 0600; refused without an
encryption key, with no backup (exit 13), and by digest."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from drbootstrap.agent.actions.dumps import DumpsAgent
from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.facts import NodeFacts
from drbootstrap.agent.registry import ActionFailed, AgentContext
from drbootstrap.backups import master_state
from drbootstrap.backups.object_server import start_serving_once
from drbootstrap.backups.object_store import ObjectStore
from drbootstrap.errors import BackupError
from drbootstrap.executor.backends import RpcCallFailed
from drbootstrap.exit_status import ExitStatus
from drbootstrap.images import master_state as on_master
from drbootstrap.images.from_spec import master_state_agent_settings
from tests.unit.executor_fakes import load_spec_text

SPEC = """
environment: demo
domain: demo.internal
provider: {name: local, network: 10.213.0.0/24}
security: {psk: "${env:DRB_TEST_PSK}"}
master: {restore: {ca: true}}
buckets: {driver: local, path: BUCKETS, container: backups, prefix: prod ENCRYPTION}
nodes:
  - role: web
    hostnames: [web01]
"""
CA_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEkeymaterialthatmustneverbeinclear\n-----END RSA PRIVATE KEY-----\n"


def make_master_dir(node_dir: Path) -> None:
    for relative, text in (("puppet/ca/ca_crt.pem", "CA CERT\n"), ("puppet/ca/ca_key.pem", CA_KEY),
                           ("puppet/ca/signed/web01.demo.internal.pem", "WEB01 CERT\n"),
                           ("puppet/ssl/private_keys/controller.demo.internal.pem", "MASTER KEY\n"),
                           ("puppet/code/environments/production/manifests/site.pp", "node default {}\n"),
                           ("dns/dnsmasq.conf", "domain=demo.internal\n"), ("dns/hosts", "10.0.0.2 x\n")):
        path = node_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (node_dir / "puppet/ca/ca_key.pem").chmod(0o600)


class MasterFleet:
    """The broker as the controller sees it, with the master's dumps agent answering in-process."""

    def __init__(self, agent: DumpsAgent) -> None:
        self.agent = agent

    def call(self, identity: str, agent: str, action: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert identity == "controller.demo.internal" and agent == "dumps"
        try:
            return getattr(self.agent, action)(None, data)
        except ActionFailed as error:
            raise RpcCallFailed(f"{identity}: dumps.{action} failed: {error.message}", error.data) from None


@pytest.fixture
def setup(monkeypatch, tmp_path):
    def make(encrypted: bool = True):
        monkeypatch.setenv("DRB_TEST_SEAL_KEY", "cd" * 32)
        text = SPEC.replace("BUCKETS", str(tmp_path / "buckets")).replace(
            " ENCRYPTION", ', encryption_key: "${env:DRB_TEST_SEAL_KEY}"' if encrypted else "")
        if not encrypted:
            text = text.replace("master: {restore: {ca: true}}\n", "")
        spec = load_spec_text(monkeypatch, text)
        node_dir = tmp_path / "master"
        make_master_dir(node_dir)
        settings = yaml.safe_load(master_state_agent_settings(spec, str(node_dir), sys.executable) or "")
        config = agent_config_from_dict({"identity": "controller.demo.internal",
                                         "state_dir": str(tmp_path / "agent"), **settings})
        return spec, node_dir, MasterFleet(DumpsAgent(AgentContext(config=config, facts=NodeFacts("controller"))))
    return make


def test_the_archive_puts_back_the_ca_and_code_asked_for_and_keeps_the_key_private(tmp_path):
    make_master_dir(tmp_path / "old")
    out = io.BytesIO()
    archived = on_master.write_archive(tmp_path / "old", out)
    archive = tmp_path / "state.tar.gz"
    archive.write_bytes(out.getvalue())
    rebuilt = tmp_path / "new"
    (rebuilt / "puppet/ca").mkdir(parents=True)
    (rebuilt / "puppet/ca/ca_crt.pem").write_text("A NEW CA THAT MUST GO\n")

    restored = on_master.restore_archive(archive, rebuilt, hashlib.sha256(out.getvalue()).hexdigest(), ["ca"])

    assert "puppet/ca" in archived and "dns/dnsmasq.conf" in archived and "puppet/code" in archived
    assert restored == ["puppet/ca", "puppet/ssl"]
    assert (rebuilt / "puppet/ca/ca_crt.pem").read_text() == "CA CERT\n"
    assert (rebuilt / "puppet/ca/ca_key.pem").stat().st_mode & 0o777 == 0o600
    assert not (rebuilt / "puppet/code").exists() and not (rebuilt / "dns").exists()  # not asked / never restored


def test_the_code_part_alone_replaces_the_served_environments_and_leaves_the_new_ca(tmp_path):
    make_master_dir(tmp_path / "old")
    out = io.BytesIO()
    on_master.write_archive(tmp_path / "old", out)
    archive = tmp_path / "state.tar.gz"
    archive.write_bytes(out.getvalue())
    rebuilt = tmp_path / "new"
    (rebuilt / "puppet/code/environments/stale").mkdir(parents=True)
    (rebuilt / "puppet/ca").mkdir(parents=True)
    (rebuilt / "puppet/ca/ca_crt.pem").write_text("THE NEW CA\n")

    restored = on_master.restore_archive(archive, rebuilt, hashlib.sha256(out.getvalue()).hexdigest(), ["code"])

    assert restored == ["puppet/code"]
    assert (rebuilt / "puppet/code/environments/production/manifests/site.pp").read_text() == "node default {}\n"
    assert not (rebuilt / "puppet/code/environments/stale").exists()
    assert (rebuilt / "puppet/ca/ca_crt.pem").read_text() == "THE NEW CA\n"


def test_an_archive_whose_digest_differs_is_refused_and_nothing_is_touched(tmp_path):
    make_master_dir(tmp_path / "old")
    out = io.BytesIO()
    on_master.write_archive(tmp_path / "old", out)
    archive = tmp_path / "state.tar.gz"
    archive.write_bytes(out.getvalue())
    (tmp_path / "new/puppet/ca").mkdir(parents=True)

    with pytest.raises(on_master.MasterStateError, match="refused, its sha256"):
        on_master.restore_archive(archive, tmp_path / "new", "0" * 64, ["ca"])
    assert list((tmp_path / "new/puppet/ca").iterdir()) == []


def test_backup_seals_the_master_state_and_a_rebuilt_master_fetches_it_once_and_keeps_its_ca(setup, tmp_path):
    spec, node_dir, fleet = setup()

    taken = master_state.take_master_state(spec, fleet)

    record = taken.record
    assert record is not None and record.kind == "master" and record.hostname == "controller" and record.good
    stored = Path(spec.buckets.path) / "backups" / record.id
    assert b"keymaterialthatmustneverbeinclear" not in stored.read_bytes()  # sealed at rest
    assert json.loads(Path(str(stored) + ".json").read_text())["sealed"]
    choice = master_state.choose_master_state(spec)
    assert choice is not None and choice.record.id == record.id and choice.parts == ("ca",)

    url, stop = start_serving_once(ObjectStore(spec.buckets), record.id, "127.0.0.1", 30)
    fetch = tmp_path / "master-state.json"
    fetch.write_text(json.dumps({"url": url, "key": choice.data_key, "sha256": record.manifest_digest,
                                 "size": record.size_bytes, "parts": ["ca"]}))
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    try:
        assert on_master.restore_fetched(fetch, rebuilt) == ["puppet/ca", "puppet/ssl"]
    finally:
        stop()
    assert (rebuilt / "puppet/ca/ca_key.pem").read_text() == CA_KEY
    assert (rebuilt / "puppet/ca/ca_key.pem").stat().st_mode & 0o777 == 0o600
    assert not fetch.exists() and not (rebuilt / "master-state.tar.gz").exists()
    assert "restored before puppetserver started" in choice.detail(record.created_at + 90)
    assert "from 90 s ago" in choice.detail(record.created_at + 90)


def test_without_an_encryption_key_the_ca_is_not_backed_up_and_says_why_in_one_line(setup):
    spec, _, fleet = setup(encrypted=False)

    taken = master_state.take_master_state(spec, fleet)

    assert taken.record is None and taken.failure is None
    assert taken.refused == ("controller: master state not backed up: the bucket would keep its Puppet CA key "
                             "unencrypted (add buckets.encryption_key)")
    assert not (Path(spec.buckets.path) / "backups").exists() or not any(
        (Path(spec.buckets.path) / "backups").rglob("*.dump"))


def test_restore_asked_with_no_backup_of_the_master_is_the_backup_error(setup):
    spec, _, _ = setup()

    with pytest.raises(BackupError) as raised:
        master_state.choose_master_state(spec)

    assert raised.value.exit_status == ExitStatus.BACKUP == 13
    assert raised.value.message == ("master.restore (ca): environment demo has no good backup of its master's "
                                    "state in bucket:backups/prod: nothing launched")


def test_a_corrupted_newest_archive_is_refused_by_name_and_the_older_one_chosen(setup):
    spec, _, fleet = setup()
    older = master_state.take_master_state(spec, fleet).record
    newer = master_state.take_master_state(spec, fleet).record
    assert older is not None and newer is not None
    stored = Path(spec.buckets.path) / "backups" / newer.id
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    choice = master_state.choose_master_state(spec)

    assert choice is not None and choice.record.id == older.id
    [refused] = choice.refused
    assert refused.startswith(newer.id + ": ")


def test_the_master_user_data_names_a_0600_fetch_file_and_its_settings_hold_no_url_or_key(monkeypatch, tmp_path):
    from drbootstrap.images.from_spec import master_boot_config
    from drbootstrap.images.userdata import MasterStateToRestore, cloud_config, node_env

    monkeypatch.setenv("DRB_TEST_SEAL_KEY", "cd" * 32)
    spec = load_spec_text(monkeypatch, SPEC.replace("BUCKETS", str(tmp_path)).replace(
        " ENCRYPTION", ', encryption_key: "${env:DRB_TEST_SEAL_KEY}"'))
    offered = MasterStateToRestore(url="http://10.0.0.1:5000/secret-token", key="K" * 43 + "=", sha256="ab" * 32,
                                   size=1234, parts=("ca",))
    config = master_boot_config(spec, agent_key="k" * 40, master_state=offered, config_dir="/etc/drb",
                                node_dir="/var/lib/drb")

    files = {f["path"]: f for f in cloud_config(config)["write_files"]}
    fetch = files["/etc/drb/master-state.json"]
    assert fetch["permissions"] == "0600" and json.loads(fetch["content"])["parts"] == ["ca"]
    settings = node_env(config)
    assert "DRB_MASTER_STATE_FILE=/etc/drb/master-state.json" in settings
    assert "secret-token" not in settings and "K" * 43 not in settings and "secret-token" not in repr(config)
    dumps = yaml.safe_load(files["/etc/drb/agent-backup.yaml"]["content"])["dumps"]["commands"]
    assert list(dumps) == ["master-state"] and "--node-dir /var/lib/drb" in dumps["master-state"]["command"]
