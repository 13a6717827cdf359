"""The dumps agent: a dump is spooled on the node, read back in chunks, and a restore refuses an
object whose digest is not the expected one before the restore command sees a byte."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from drbootstrap.agent.actions.dumps import DumpsAgent
from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.facts import NodeFacts
from drbootstrap.agent.registry import ActionFailed, AgentContext

REQUEST = None  # the handlers do not look at the request


@pytest.fixture
def agent(tmp_path: Path) -> DumpsAgent:
    config = agent_config_from_dict({"identity": "db01", "state_dir": str(tmp_path / "state"), "dumps": {
        "root": str(tmp_path), "commands": {
            "db": {"command": "seq 1 2000", "restore": 'cat > "$DRB_ROOT/restored"', "timeout": 30},
            "broken": {"command": "echo partial; echo no database >&2; exit 3", "restore": "true"},
            "slow": {"command": "echo partial; sleep 30", "restore": "true", "timeout": 1}}}})
    return DumpsAgent(AgentContext(config=config, facts=NodeFacts("db01")))


def _read_all(agent: DumpsAgent, job: str, length: int = 1000) -> bytes:
    out, offset = b"", 0
    while True:
        reply = agent.read(REQUEST, {"job": job, "offset": offset, "length": length})
        chunk = base64.b64decode(reply["data"])
        out, offset = out + chunk, offset + len(chunk)
        if reply["eof"]:
            return out


def test_a_dump_is_spooled_privately_with_its_digest_and_read_back_in_chunks(agent, tmp_path):
    taken = agent.take(REQUEST, {"name": "db"})

    expected = "".join(f"{n}\n" for n in range(1, 2001)).encode()
    assert taken["size"] == len(expected) and taken["sha256"] == hashlib.sha256(expected).hexdigest()
    spool = tmp_path / "state" / "dumps" / f"{taken['job']}.dump"
    assert spool.stat().st_mode & 0o777 == 0o600
    assert _read_all(agent, taken["job"]) == expected
    agent.discard(REQUEST, {"job": taken["job"]})
    assert not spool.exists()


def test_a_spool_no_controller_finished_reading_is_removed_after_a_day(agent, tmp_path):
    import os

    first = agent.take(REQUEST, {"name": "db"})
    spool = tmp_path / "state" / "dumps" / f"{first['job']}.dump"
    os.utime(spool, (0, 0))
    agent.take(REQUEST, {"name": "db"})
    assert not spool.exists()


def test_a_failing_or_slow_dump_command_leaves_nothing_and_says_why(agent, tmp_path):
    with pytest.raises(ActionFailed, match="exited 3") as failed:
        agent.take(REQUEST, {"name": "broken"})
    assert failed.value.data["output"] == "no database"
    with pytest.raises(ActionFailed, match="timed out after 1 s"):
        agent.take(REQUEST, {"name": "slow"})
    assert list((tmp_path / "state" / "dumps").iterdir()) == []


def test_a_request_names_a_dump_of_the_agent_config_never_a_command(agent):
    with pytest.raises(ActionFailed, match="this node has no dump 'rm-rf'"):
        agent.take(REQUEST, {"name": "rm-rf"})
    spec = DumpsAgent.actions()["take"]
    assert set(spec.inputs) == {"name"}


class _OneObject(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served():
    server = http.server.HTTPServer(("127.0.0.1", 0), _OneObject)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _restore(agent, served, body: bytes, expected: bytes, tmp_path: Path) -> dict:
    _OneObject.body = body
    return agent.restore(REQUEST, {"name": "db", "url": f"http://127.0.0.1:{served.server_port}/x",
                                   "sha256": hashlib.sha256(expected).hexdigest(), "size": len(expected)})


def test_a_restore_feeds_the_object_to_the_command_when_its_digest_matches(agent, served, tmp_path):
    reply = _restore(agent, served, b"CREATE TABLE t;\n", b"CREATE TABLE t;\n", tmp_path)

    assert (tmp_path / "restored").read_bytes() == b"CREATE TABLE t;\n"
    assert reply["sha256"] == hashlib.sha256(b"CREATE TABLE t;\n").hexdigest()


def test_a_corrupted_object_is_refused_before_the_restore_command_runs(agent, served, tmp_path):
    with pytest.raises(ActionFailed, match="refused, its digest does not match") as refused:
        _restore(agent, served, b"CREATE TABLE X;\n", b"CREATE TABLE t;\n", tmp_path)

    assert refused.value.data["refused"] == "digest"
    assert not (tmp_path / "restored").exists()
    assert list((tmp_path / "state" / "dumps").iterdir()) == []


def test_a_node_learns_its_dump_commands_from_its_user_data() -> None:
    import yaml

    from drbootstrap.images.from_spec import agent_backup_settings
    from drbootstrap.spec.models import NodeGroup

    group = NodeGroup.model_validate({"role": "db", "hostnames": ["db01"], "dumps": [
        {"name": "db", "command": "sqlite3 app.db .dump", "restore": "sqlite3 app.db", "timeout_seconds": 90}]})
    settings = agent_backup_settings(group, "/state/nodes/db01/root")
    assert settings is not None
    config = agent_config_from_dict({"identity": "db01", **yaml.safe_load(settings)})
    assert config.dumps is not None and config.dumps.root == "/state/nodes/db01/root"
    assert config.dumps.commands["db"].command == "sqlite3 app.db .dump"
    assert config.dumps.commands["db"].restore == "sqlite3 app.db" and config.dumps.commands["db"].timeout == 90
