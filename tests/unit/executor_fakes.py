"""Fakes for the executor's seams: a libcloud-like cloud, a broker fleet and node access."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from libcloud.compute.base import Node
from libcloud.compute.types import NodeState

from drbootstrap.errors import MessagingError
from drbootstrap.executor.context import RunContext, UpOptions
from drbootstrap.journal import Journal
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.plan import build_plan
from drbootstrap.providers.base import Provider
from drbootstrap.providers.nodes import HOSTNAME_TAG
from drbootstrap.providers.registry import create_provider
from drbootstrap.providers.settings import ProviderSettings
from drbootstrap.providers.values import EnvironmentScope
from drbootstrap.spec import parse_spec

SPEC = """
environment: demo
domain: demo.internal
provider: {name: local, network: 10.213.0.0/24, max_parallel: 4}
security: {psk: "${env:DRB_TEST_PSK}"}
master: {hostname: controller, image: master}
nodes:
  - {role: db, image: worker, hostnames: [db01], volumes: [{name: data, mount: /srv/db, size_gb: 1}],
     checks: [{command: test -f /srv/db/ready}]}
  - {role: web, image: worker, count: 2, hostname_pattern: "web{n:02}", after: [db]}
  - {role: mail, image: worker, hostnames: [mail01]}
"""
PSK = "test-psk-0123456789abcdef-SECRET"


class Crash(BaseException):
    """Stands for SIGKILL: nothing in the executor may catch it."""


class FakeCloud:
    """A thread-safe cloud: create_node honours client tokens, nodes boot when asked."""

    name = "fake"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.nodes: dict[str, Node] = {}
        self.creates: Counter[str] = Counter()
        self.destroyed: list[str] = []
        self.fail_boot: set[str] = set()
        self.lose: Counter[str] = Counter()  # hostname -> how many of its next launches the cloud loses at once
        self.volumes: list[Any] = []
        self.attached: list[tuple[str, str]] = []
        self._ids = itertools.count(1)

    def create_node(self, name: str, size: Any, image: Any, ex_metadata: dict | None = None,
                    ex_userdata: str | None = None, ex_clienttoken: str | None = None) -> Node:
        with self.lock:
            for node in self.nodes.values():
                if ex_clienttoken and node.extra["client_token"] == ex_clienttoken:
                    return node
            self.creates[name] += 1
            number = next(self._ids)
            state = NodeState.ERROR if name in self.fail_boot else NodeState.RUNNING
            node = Node(id=f"i-{number}", name=name, state=state, public_ips=[], private_ips=[f"10.0.0.{number}"],
                        driver=self, extra={"tags": dict(ex_metadata or {}), "client_token": ex_clienttoken,
                                            "boot": "failed" if name in self.fail_boot else "finished",
                                            "user_data": ex_userdata, "error": "boot.sh: exit 1\nno such image",
                                            "console_log": f"/tmp/console-{number}"})
            if self.lose[name] > 0:
                self.lose[name] -= 1  # created, then reclaimed before it booted
            else:
                self.nodes[node.id] = node
            return node

    def list_nodes(self) -> list[Node]:
        with self.lock:
            return list(self.nodes.values())

    def destroy_node(self, node: Node) -> bool:
        with self.lock:
            self.nodes.pop(node.id, None)
            self.destroyed.append(node.name)
        return True

    def list_volumes(self) -> list[Any]:
        return list(self.volumes)

    def create_volume(self, size: int, name: str, snapshot: Any = None) -> Any:
        volume = type("Volume", (), {"id": f"vol-{len(self.volumes)}", "name": name, "extra": {}})()
        self.volumes.append(volume)
        return volume

    def attach_volume(self, node: Node, volume: Any, device: str | None = None) -> bool:
        volume.extra["node_id"] = node.id
        self.attached.append((node.name, device or ""))
        return True

    def destroy_volume(self, volume: Any) -> bool:
        self.volumes.remove(volume)
        return True

    def ex_get_console_output(self, node: Node) -> dict[str, str]:
        return {"output": "Cloud-init v. 22.4 finished at Wed, 25 Nov 2026 12:00:00 +0000. Up 9.1 seconds"}

    def ex_release_if_idle(self) -> bool:
        return not self.nodes

    def live_hostnames(self) -> list[str]:
        return sorted(n.extra["tags"][HOSTNAME_TAG] for n in self.list_nodes())


class FakeBroker:
    """Agents answer as their spec name once the master's DNS has it (they took the name at boot)."""

    def __init__(self, cloud: FakeCloud, domain: str = "demo.internal") -> None:
        self.cloud, self.domain = cloud, domain
        self.lock = threading.Lock()
        self.names: dict[str, str] = {}  # fqdn -> address
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.fail_puppet: set[str] = set()
        self.crash_at: tuple[str, str] | None = None  # (identity, action)
        self.order: list[tuple[str, str]] = []
        self.named_at_boot = True  # False: agents answer as ip-A-B-C-D until rebooted through their agent
        self.rebooted: set[str] = set()  # addresses
        self.rabbitmq_apart: set[str] = set()  # broker nodes whose RabbitMQ runs outside the master's cluster

    def answering(self) -> set[str]:
        live = {a for n in self.cloud.list_nodes() if n.state == NodeState.RUNNING for a in n.private_ips}
        named = {name for name, addr in self.names.items() if addr in live
                 and (self.named_at_boot or addr in self.rebooted)}
        unnamed = {
            self.cloud_name(addr) for addr in live - {self.names[n] for n in named} - set(self.master_addresses())
        }
        return {f"controller.{self.domain}"} | named | unnamed

    def cloud_name(self, address: str) -> str:
        return f"ip-{address.replace('.', '-')}.{self.domain}"

    def master_addresses(self) -> list[str]:
        return [a for n in self.cloud.list_nodes() if n.name == "controller" for a in n.private_ips]


class FakeFleet:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    def discover(self, expect: list[str], timeout: float) -> set[str]:
        return set(expect) & self.broker.answering()

    def identity_at(self, address: str, timeout: float) -> str | None:
        answering = self.broker.answering()
        for name, addr in self.broker.names.items():
            if addr == address and name in answering:
                return name
        cloud_name = self.broker.cloud_name(address)
        return cloud_name if cloud_name in answering else None

    def call(self, identity: str, agent: str, action: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        broker = self.broker
        with broker.lock:
            broker.calls[(identity, agent, action)] += 1
            broker.order.append((identity, action))
        if broker.crash_at == (identity, action):
            raise Crash()
        if agent == "dns" and action == "add":
            with broker.lock:
                broker.names[data["name"]] = data["address"]
            return {}
        if agent == "puppet" and action == "runonce" and identity in broker.fail_puppet:
            from drbootstrap.executor.backends import RpcCallFailed

            raise RpcCallFailed(f"{identity}: puppet.runonce failed: Puppet run failed (exit 1)",
                                {"output": "Error: Could not find class role::nope"})
        if identity not in broker.answering():
            raise MessagingError(f"{identity} did not answer {agent}.{action}")
        if agent == "broker_node":
            return rabbitmq_state(identity, joined=identity not in broker.rabbitmq_apart)
        if agent == "reboot":
            with broker.lock:
                broker.rebooted.add(identity[3:].split(".")[0].replace("-", "."))
            return {}
        return {"exitcode": 2, "changed": True, "duration": 1.0}

    def close(self) -> None:
        pass


def rabbitmq_state(identity: str, *, joined: bool) -> dict[str, Any]:
    """What a broker node's agent reports of its RabbitMQ (broker_node.status), in or out of the cluster."""
    node, seed = f"drbootstrap@{identity}", "drbootstrap@controller.demo.internal"
    members = [seed, node] if joined else [node]
    return {"node": node, "running": True, "listening": True, "seed": seed, "members": members,
            "stomp": f"{identity}:61613", "ready": joined,
            "why": "" if joined else f"not in a cluster with {seed} yet (running nodes: {node})"}


class FakeAccess:
    def __init__(self) -> None:
        self.armed: dict[str, str] = {}
        self.commands: list[tuple[str, str]] = []
        self.command_status = 0

    def run(self, node_id: str, command: str, timeout: float) -> tuple[int, str]:
        self.commands.append((node_id, command))
        return self.command_status, "" if self.command_status == 0 else "test: /srv/db/ready: missing"

    def push_recipes(self, master_id: str, source: Path) -> str:
        return "recipes pushed"

    def arm_autosign(self, master_id: str, certname: str, digest: str) -> None:
        self.armed[certname] = digest

    def sign_certificate(self, master_id: str, certname: str) -> None:
        pass

    def node_path(self, hostname: str, path: str) -> str:
        return path

    def node_dirs(self, hostname: str) -> dict[str, str]:
        return {"config_dir": f"/tmp/fake/{hostname}/etc", "node_dir": f"/tmp/fake/{hostname}/var"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def load_spec_text(monkeypatch: Any, text: str = SPEC) -> Any:
    monkeypatch.setenv("DRB_TEST_PSK", PSK)
    return parse_spec(text)


def make_provider(spec: Any, state_dir: Path, driver: Any, *, name: str | None = None) -> Provider:
    """The spec's provider (the registry's class for its name) over a fake driver."""
    settings = ProviderSettings.from_block(spec.provider)
    settings.name = name or settings.name
    scope = EnvironmentScope(spec.environment, state_dir, state_dir / "ssh-key.pem")
    return create_provider(settings, scope, driver_factory=lambda: driver)


def fake_probe(address: str, spec: Any, deadline: float, *, puppet_ca: bool = False) -> str:
    """The master's services answer at once."""
    return "puppet-ca ready" if puppet_ca else "dns, broker ready"


def make_context(spec: Any, state_dir: Path, cloud: FakeCloud, broker: FakeBroker, access: FakeAccess,
                 *, options: UpOptions | None = None, events: list | None = None) -> RunContext:
    sink = events if events is not None else []
    return RunContext(
        spec=spec, plan=build_plan(spec), journal=Journal.open(state_dir, spec.environment),
        provider=make_provider(spec, state_dir, cloud), fleet_factory=lambda address: FakeFleet(broker), access=access,
        probe_services=fake_probe, psk=PSK,
        max_parallel=spec.provider.max_parallel, clock=FakeClock(),
        options=options or UpOptions(), emit=sink.append, paths=EnvironmentPaths(state_dir, spec.environment),
        recipes_dir=Path("/recipes"),
    )


ALL = ["controller", "db01", "web01", "web02", "mail01"]  # every node of the test spec, master first


@pytest.fixture
def world(monkeypatch, tmp_path):
    """The test spec, a state dir, and a fake cloud, broker and node access wired together."""
    spec = load_spec_text(monkeypatch)
    cloud = FakeCloud()
    return spec, tmp_path, cloud, FakeBroker(cloud), FakeAccess()
