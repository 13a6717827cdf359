"""Dumps through the bucket, controller side, with the node's dumps agent in-process and libcloud's
real local storage driver: streamed in chunks, recorded, listed, restored by digest, refused when
corrupted (with fallback: older), pruned by retention; a failing dump recorded as not good."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from drbootstrap.agent.actions.dumps import DumpsAgent
from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.facts import NodeFacts
from drbootstrap.agent.registry import ActionFailed, AgentContext
from drbootstrap.backups import dumps
from drbootstrap.errors import DrbError
from drbootstrap.executor.backends import RpcCallFailed
from drbootstrap.executor.context import NodeRuntime
from drbootstrap.executor.outcomes import StepFailed
from drbootstrap.executor.steps import restore
from drbootstrap.images.from_spec import agent_backup_settings
from tests.unit.executor_fakes import FakeAccess, FakeBroker, FakeCloud, load_spec_text, make_context

SPEC = """
environment: demo
domain: demo.internal
provider: {name: local, network: 10.213.0.0/24, max_parallel: 2}
security: {psk: "${env:DRB_TEST_PSK}"}
buckets: {driver: local, path: BUCKETS, container: backups, prefix: prod, retention: {keep_last: 2}ENCRYPTION}
nodes:
  - role: db
    hostnames: [db01]
    dumps:
      - {name: db, command: 'cat "$DRB_ROOT/data"', restore: 'cat > "$DRB_ROOT/restored"', fallback: FALLBACK}
      - {name: broken, command: 'echo "no such table" >&2; exit 2', restore: 'true'}
    restore: [{dump: db}]
"""


class AgentFleet:
    """The broker as the controller sees it, with db01's dumps agent answering in-process."""

    def __init__(self, agent: DumpsAgent) -> None:
        self.agent, self.reads = agent, 0

    def call(self, identity: str, agent: str, action: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert identity == "db01.demo.internal" and agent == "dumps"
        self.reads += action == "read"
        try:
            return getattr(self.agent, action)(None, data)
        except ActionFailed as error:
            raise RpcCallFailed(f"{identity}: dumps.{action} failed: {error.message}", error.data) from None

    def close(self) -> None:
        pass


@pytest.fixture
def setup(monkeypatch, tmp_path):
    def make(fallback: str = "none", encrypted: bool = False):
        monkeypatch.setenv("DRB_TEST_DUMP_KEY", "ab" * 32)
        text = SPEC.replace("BUCKETS", str(tmp_path / "buckets")).replace("FALLBACK", fallback).replace(
            "ENCRYPTION", ', encryption_key: "${env:DRB_TEST_DUMP_KEY}"' if encrypted else "")
        spec = load_spec_text(monkeypatch, text)
        root = tmp_path / "node"
        root.mkdir(exist_ok=True)
        settings = yaml.safe_load(agent_backup_settings(spec.group("db"), str(root)) or "")
        config = agent_config_from_dict({"identity": "db01.demo.internal", "state_dir": str(tmp_path / "agent"),
                                         **settings})
        fleet = AgentFleet(DumpsAgent(AgentContext(config=config, facts=NodeFacts("db01"))))
        cloud = FakeCloud()
        ctx = make_context(spec, tmp_path / "state", cloud, FakeBroker(cloud), FakeAccess())
        ctx.fleet_factory = lambda address: fleet
        ctx.master = NodeRuntime(ctx.plan.master, address="10.213.0.2")
        monkeypatch.setattr(ctx.provider, "controller_address_for_nodes", lambda: "127.0.0.1")
        node = NodeRuntime(next(n for n in ctx.plan.nodes() if n.hostname == "db01"), address="10.213.0.3")
        return ctx, node, root, fleet
    return make


def test_a_dump_is_streamed_in_chunks_with_its_digest_and_a_failing_one_is_recorded_not_good(setup):
    ctx, _, root, fleet = setup()
    data = bytes(range(256)) * 2000  # 512000 bytes: four chunks
    (root / "data").write_bytes(data)

    taken = dumps.take_dumps(ctx.spec, ctx.fleet())

    [record] = taken.records
    assert record.kind == "dump" and record.hostname == "db01" and record.name == "db" and record.good
    assert record.manifest_digest == hashlib.sha256(data).hexdigest() and record.size_bytes == len(data)
    assert record.location == "bucket:backups/prod" and record.id.startswith("prod/demo/db01/db/")
    assert fleet.reads == 4
    stored = ctx.spec.buckets.path + "/backups/" + record.id
    assert Path(stored).read_bytes() == data
    [failure] = taken.failures
    assert failure.line() == "db01: dump broken: the command exited 2 (no such table)"
    listed = dumps.list_dumps(ctx.spec.buckets, "demo")
    assert [(r.name, r.good) for r in listed] == [("db", True), ("broken", False)]
    assert list((Path(ctx.spec.buckets.path).parent / "agent" / "dumps").iterdir()) == []  # spool discarded


def test_restore_fetches_the_newest_dump_and_reports_it_with_its_age(setup):
    ctx, node, root, _ = setup()
    (root / "data").write_bytes(b"first\n")
    dumps.take_dumps(ctx.spec, ctx.fleet())
    (root / "data").write_bytes(b"second\n")
    newest = dumps.take_dumps(ctx.spec, ctx.fleet()).records[0]

    result = restore(ctx, node)

    assert (root / "restored").read_bytes() == b"second\n"
    assert f"dump db {newest.id.rsplit('/', 1)[-1]} from" in result.detail and "matched" in result.detail
    assert result.facts["backup:db:backup_id"] == newest.id and result.facts["backup:db:verified"] == "ok"
    assert [r.verified_ok for r in dumps.list_dumps(ctx.spec.buckets, "demo") if r.name == "db"] == [None, True]


def _corrupt_newest(ctx) -> str:
    newest = [r for r in dumps.list_dumps(ctx.spec.buckets, "demo") if r.name == "db"][-1]
    path = Path(ctx.spec.buckets.path) / "backups" / newest.id
    raw = bytearray(path.read_bytes())
    raw[0] ^= 0xFF
    path.write_bytes(bytes(raw))
    return newest.id


def test_a_corrupted_dump_is_refused_by_name(setup):
    ctx, node, root, _ = setup()
    (root / "data").write_bytes(b"only\n")
    dumps.take_dumps(ctx.spec, ctx.fleet())
    corrupted = _corrupt_newest(ctx)

    with pytest.raises(StepFailed, match=f"db01: dump db {corrupted} refused: its digest does not match"):
        restore(ctx, node)
    assert not (root / "restored").exists()


def test_with_fallback_older_a_corrupted_dump_gives_way_to_the_older_one(setup):
    ctx, node, root, _ = setup("older")
    (root / "data").write_bytes(b"older\n")
    dumps.take_dumps(ctx.spec, ctx.fleet())
    (root / "data").write_bytes(b"newer\n")
    dumps.take_dumps(ctx.spec, ctx.fleet())
    corrupted = _corrupt_newest(ctx)

    result = restore(ctx, node)

    assert (root / "restored").read_bytes() == b"older\n"
    assert f"refused {corrupted}: its digest does not match" in result.detail


def test_as_of_before_every_dump_restores_nothing_and_says_so(setup):
    ctx, node, root, _ = setup()
    (root / "data").write_bytes(b"x\n")
    dumps.take_dumps(ctx.spec, ctx.fleet())
    ctx.options.as_of = 1.0

    with pytest.raises(DrbError, match="db01: no good dump db of environment demo in bucket:backups/prod at or"):
        restore(ctx, node)


def test_a_first_build_with_no_dump_ever_taken_restores_nothing_and_says_so(setup):
    ctx, node, root, _ = setup()

    result = restore(ctx, node)

    assert "no dump db in the bucket yet: nothing restored" in result.detail
    assert not (root / "restored").exists()


def test_pruning_keeps_the_newest_per_policy_and_never_the_newest_good(setup):
    ctx, _, root, _ = setup()
    (root / "data").write_bytes(b"x\n")
    for _ in range(3):
        dumps.take_dumps(ctx.spec, ctx.fleet())

    deleted = dumps.prune_dumps(ctx.spec.buckets, "demo")

    left = dumps.list_dumps(ctx.spec.buckets, "demo")
    assert len([r for r in left if r.name == "db"]) == 2 and len([r for r in deleted if r.name == "db"]) == 1
    assert all(r.created_at < min(x.created_at for x in left if x.name == "db") for r in deleted if r.name == "db")


def test_an_encrypted_dump_is_sealed_at_rest_opened_by_the_node_and_refused_when_altered(setup):
    ctx, node, root, fleet = setup("none", encrypted=True)
    secret_rows = b"INSERT INTO cards VALUES('4111111111111111');\n" * 5000
    (root / "data").write_bytes(secret_rows)
    [record] = dumps.take_dumps(ctx.spec, ctx.fleet()).records
    stored = Path(ctx.spec.buckets.path) / "backups" / record.id
    assert b"4111111111111111" not in stored.read_bytes() and record.size_bytes == len(secret_rows)
    assert "ab" * 32 not in (stored.parent / (stored.name + ".json")).read_text()

    restore(ctx, node)
    assert (root / "restored").read_bytes() == secret_rows

    (root / "restored").unlink()
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 1
    stored.write_bytes(bytes(raw))
    with pytest.raises(StepFailed, match="refused: its sealed content does not open"):
        restore(ctx, node)
    assert not (root / "restored").exists()
