"""What one of drbootstrap's RabbitMQ nodes says of itself: is it running, does it serve STOMP, which
nodes of its cluster are running beside it. A broker node's agent reports it (the broker node's
readiness, `up`'s broker step); runs on the node, next to the node's files (drbootstrap.rabbitmq).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drbootstrap.broker import stomp_connect_probe
from drbootstrap.rabbitmq import NODE_FILE

RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
CTL_TIMEOUT = 30.0  # rabbitmqctl starts an Erlang VM of its own: a few seconds on a busy node


@dataclass(frozen=True)
class BrokerNodeState:
    """A RabbitMQ node's state; `why` says (one line) what keeps it from being ready, "" when ready."""

    node: str
    running: bool
    listening: bool
    seed: str | None  # the cluster's first node (the master's), None outside a cluster
    members: tuple[str, ...] = ()  # the cluster's running nodes, as this node sees them
    stomp: str = ""  # host:port of its plain STOMP listener
    why: str = ""

    @property
    def in_cluster(self) -> bool:
        """Running beside the seed in one cluster (outside a cluster: running at all)."""
        return self.node in self.members and (self.seed is None or self.seed in self.members)

    @property
    def ready(self) -> bool:
        return self.running and self.listening and self.in_cluster

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "running": self.running, "listening": self.listening, "seed": self.seed,
                "members": list(self.members), "stomp": self.stomp, "ready": self.ready, "why": self.why}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BrokerNodeState:
        members = data.get("members")
        seed = data.get("seed")
        return cls(node=str(data.get("node", "")), running=data.get("running") is True,
                   listening=data.get("listening") is True, seed=seed if isinstance(seed, str) else None,
                   members=tuple(str(m) for m in members) if isinstance(members, list) else (),
                   stomp=str(data.get("stomp", "")), why=str(data.get("why", "")))


def broker_node_state(base_dir: Path) -> BrokerNodeState | None:
    """The state of the RabbitMQ node whose files are in BASE_DIR; None when none was ever started there."""
    try:
        described = json.loads((base_dir / NODE_FILE).read_text())
    except (OSError, ValueError):
        return None
    node, seed = str(described["node"]), described.get("seed")
    host, port = str(described["stomp_host"]), int(described["stomp_port"])
    stomp = f"{host}:{port}"
    pid = beam_pid(base_dir)
    if pid is None or not alive(pid):
        return BrokerNodeState(node, False, False, seed, stomp=stomp,
                               why=f"RabbitMQ is not running (see {base_dir / 'rabbitmq.log'})")
    listening, why_not = stomp_connect_probe(host, port, timeout=3.0)
    if not listening:
        return BrokerNodeState(node, True, False, seed, stomp=stomp, why=f"no STOMP on {stomp} yet: {why_not}")
    members, why_not = running_nodes(base_dir, node, int(described.get("epmd_port") or 4369))
    state = BrokerNodeState(node, True, True, seed, members, stomp)
    if not state.in_cluster:
        why = why_not or f"not in a cluster with {seed} yet (running nodes: {', '.join(members) or 'none'})"
        return BrokerNodeState(node, True, True, seed, members, stomp, why)
    return state


def beam_pid(base_dir: Path) -> int | None:
    """The Erlang VM's pid, from the pid file RabbitMQ writes (RABBITMQ_PID_FILE)."""
    try:
        return int((base_dir / "rabbitmq.beam.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    """PID runs (not a zombie left for its parent to reap)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not any(line.startswith("State:") and "Z" in line.split()[1:2] for line in status.splitlines())


def running_nodes(base_dir: Path, node: str, epmd_port: int) -> tuple[tuple[str, ...], str]:
    """The running nodes of NODE's cluster (rabbitmqctl cluster_status), and why not when it cannot say."""
    if not RABBITMQCTL.exists():
        return (), f"{RABBITMQCTL} is missing"
    environment = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8",
                   "HOME": str(base_dir),  # its .erlang.cookie
                   "ERL_EPMD_PORT": str(epmd_port), "RABBITMQ_CONF_ENV_FILE": str(base_dir / "rabbitmq-env.conf")}
    command = [str(RABBITMQCTL), "-q", "-n", node, "cluster_status", "--formatter", "json"]
    if "." in node.partition("@")[2]:
        command.insert(1, "--longnames")
    try:
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=CTL_TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return (), f"rabbitmqctl cluster_status did not answer within {CTL_TIMEOUT:.0f} s"
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return (), f"rabbitmqctl cluster_status exited {done.returncode}: {last[-1] if last else 'no output'}"
    try:
        status = json.loads(done.stdout)
    except ValueError:
        return (), "rabbitmqctl cluster_status printed no JSON"
    running = status.get("running_nodes") if isinstance(status, dict) else None
    return (tuple(sorted(str(n) for n in running)) if isinstance(running, list) else ()), ""
