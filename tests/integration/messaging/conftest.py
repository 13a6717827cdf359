"""Fixtures for the native RPC integration tests: the session broker, a key, a small in-process fleet."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drbootstrap.agent.config import AgentConfig, agent_config_from_dict
from drbootstrap.agent.daemon import AgentServer, run_agents
from drbootstrap.messaging.client import ClientConfig, RpcClient


@dataclass
class Fleet:
    broker_url: str
    key_file: Path
    work: Path
    servers: list[AgentServer]
    suffix: str

    @property
    def identities(self) -> list[str]:
        return [server.identity for server in self.servers]

    def client_config(self, **overrides) -> ClientConfig:
        values = dict(brokers=[self.broker_url], key_file=self.key_file, discovery_timeout=5.0, timeout=30.0)
        values.update(overrides)
        return ClientConfig(**values)

    def client(self, **overrides) -> RpcClient:
        return RpcClient(self.client_config(**overrides))


def new_key(directory: Path) -> Path:
    key = directory / "psk"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    return key


def node_config(work: Path, broker_url: str, key: Path, identity: str, **extra) -> AgentConfig:
    node_dir = work / identity
    node_dir.mkdir(parents=True, exist_ok=True)
    facts = extra.pop("facts", {})
    classes = extra.pop("classes", [])
    (node_dir / "facts.yaml").write_text("".join(f"{k}: {v}\n" for k, v in facts.items()))
    (node_dir / "classes.txt").write_text("\n".join(classes) + "\n")
    settings = {
        "identity": identity, "brokers": [broker_url], "key_file": str(key), "heartbeat_ms": 5000,
        "facts_file": str(node_dir / "facts.yaml"), "classes_file": str(node_dir / "classes.txt"),
        "puppet": {"confdir": str(node_dir / "puppet"), "vardir": str(node_dir / "puppet-var")},
    }
    settings.update(extra)
    return agent_config_from_dict(settings)


@pytest.fixture(scope="module")
def fleet(activemq) -> Iterator[Fleet]:
    """Five agents on the session broker: web01-03 (class nginx), db01-02 (class mysql)."""
    work = Path(tempfile.mkdtemp(prefix="drb-fleet-"))
    suffix = secrets.token_hex(3)
    key = new_key(work)
    url = f"stomp://{activemq.host}:{activemq.port}"
    configs = []
    for index, role in enumerate(["web", "web", "web", "db", "db"]):
        number = sum(1 for c in configs if c.role == role) + 1
        configs.append(node_config(
            work, url, key, f"{role}{number:02d}-{suffix}", role=role,
            facts={"cpus": index + 1, "zone": "a" if index % 2 == 0 else "b"},
            classes=["base", "nginx" if role == "web" else "mysql"],
        ))
    servers: list[AgentServer] = []
    try:
        servers = run_agents(configs, wait=30)
        yield Fleet(url, key, work, servers, suffix)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
