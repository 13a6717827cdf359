"""The real seams: the broker (RPC client), the local cloud's nodes (nsenter) and the master's probes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from drbootstrap.errors import MessagingError
from drbootstrap.executor.ssh_access import SshNodeAccess
from drbootstrap.messaging.envelope import FactFilter, Filter
from drbootstrap.providers.base import Provider
from drbootstrap.spec.models import EnvironmentSpec

if TYPE_CHECKING:
    from drbootstrap.providers.local.driver import LocalNodeDriver


class RpcCallFailed(MessagingError):
    """An agent answered with a failed status; `data` holds its reply (Puppet output, exit code)."""

    def __init__(self, message: str, data: dict[str, Any], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.data = data
        self.log_tail = str(data.get("output", "")) if isinstance(data, dict) else ""


class RpcFleet:
    """The Fleet seam over drbootstrap.messaging.client.RpcClient (one connection per thread)."""

    def __init__(self, broker: str, key_file: Path, *, trusted_keys_dir: Path | None = None,
                 tls_ca: Path | None = None, tls_server_name: str | None = None,
                 connect_timeout: float = 30.0, broker_kind: str = "activemq") -> None:
        from drbootstrap.messaging.client import ClientConfig, RpcClient

        config = ClientConfig(brokers=[broker], key_file=key_file, trusted_keys_dir=trusted_keys_dir, tls_ca=tls_ca,
                              tls_server_name=tls_server_name,
                              identity="drbootstrap-up", broker_kind=broker_kind,
                              connect_timeout=connect_timeout, discovery_timeout=2.0)
        self.client = RpcClient(config).__enter__()

    def discover(self, expect: list[str], timeout: float) -> set[str]:
        if not expect:
            return set()
        self.client.config.discovery_timeout = timeout
        result = self.client.ping(Filter(identity=tuple(expect)), expect=expect)
        return set(result.responded) & set(expect)

    def identity_at(self, address: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.client.config.discovery_timeout = min(3.0, timeout)
            answered = self.client.ping(Filter(fact=(FactFilter("ip", "==", address),))).responded
            if answered:
                return min(answered)
            time.sleep(0.5)
        return None

    def call(self, identity: str, agent: str, action: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        result = self.client.call(agent, action, data, targets=[identity], timeout=timeout)
        if not result.replies:
            raise MessagingError(f"{identity} did not answer {agent}.{action} within {timeout:.0f} s",
                                 hint="check that its agent runs and reaches the broker")
        reply = result.replies[0]
        if reply.status_code != 0:
            raise RpcCallFailed(f"{identity}: {agent}.{action} failed: {reply.status_message}", dict(reply.data or {}))
        return dict(reply.data or {})

    def close(self) -> None:
        self.client.__exit__(None, None, None)


class LocalNodeAccess:
    """NodeAccess on the local cloud: commands in workers through nsenter; the master's Puppet CA
    (recipes, autosign tokens, signing) over SSH exactly as on a real cloud (SshNodeAccess).

    Each node's config_dir and node_dir live under the environment's state directory, because
    a local node shares this host's filesystem (see drbootstrap.providers.local).
    """

    def __init__(self, provider: Provider, nodes_dir: Path, images_dir: Path, recipes_dir: Path, *,
                 master_hostname: str) -> None:
        self.provider = provider
        self.nodes_dir, self.images_dir, self.recipes_dir = nodes_dir, images_dir, recipes_dir
        self.master_hostname = master_hostname
        self.master_ssh = SshNodeAccess(provider, dirs_for=self.node_dirs)

    def node_dirs(self, hostname: str) -> dict[str, Any]:
        base = self.nodes_dir / hostname
        # recipe_root: the recipes write /srv, /etc/<role>... under it, not into this host's tree.
        dirs: dict[str, Any] = {"config_dir": str(base / "etc"), "node_dir": str(base / "var"),
                                "images_dir": str(self.images_dir), "recipes_dir": str(self.recipes_dir),
                                "python": sys.executable, "recipe_root": str(self.recipe_root(hostname))}
        # As on a real cloud: the operator's public key lets drbootstrap in over SSH (the master for
        # its recipes and CA, every node for `drbootstrap ssh` and `logs`), nothing else.
        dirs["ssh_authorized_keys"] = (self.provider.operator_public_key(),)
        return dirs

    def recipe_root(self, hostname: str) -> Path:
        return self.nodes_dir / hostname / "root"

    def node_path(self, hostname: str, path: str) -> str:
        """Where a spec path (a volume's mount) is for this node's recipes: under its recipe root."""
        return str(self.recipe_root(hostname)) + path

    def run(self, node_id: str, command: str, timeout: float) -> tuple[int, str]:
        """The command runs in the node with DRB_ROOT set to its recipe root (where /srv etc. are)."""
        driver = cast("LocalNodeDriver", self.provider.driver())  # made for the local cloud's provider
        root = self.recipe_root(driver.ex_get_node(node_id).name)
        argv = driver.ex_enter_command(node_id, ["env", f"DRB_ROOT={root}", "sh", "-c", command])
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {timeout:.0f} s"
        return done.returncode, _tail(done.stdout + done.stderr)

    def push_recipes(self, master_id: str, source: Path) -> str:
        return self.master_ssh.push_recipes(master_id, source)

    def arm_autosign(self, master_id: str, certname: str, digest: str) -> None:
        self.master_ssh.arm_autosign(master_id, certname, digest)

    def sign_certificate(self, master_id: str, certname: str) -> None:
        self.master_ssh.sign_certificate(master_id, certname)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


# ---- the master's services --------------------------------------------------------------------


def master_probe(node_dir: Path | None) -> Any:
    """The ServiceProbe seam over drbootstrap.images.probes: DNS and STOMP, or (`puppet_ca`, server
    mode) the Puppet CA, failing with the service's name and the tail of its log (read from NODE_DIR when
    this host can: the local cloud)."""
    from drbootstrap.images.probes import BROKER, DNS, PUPPET_CA, node_dir_log_reader, probe_master_for_spec

    reader = node_dir_log_reader(node_dir) if node_dir is not None else None

    def probe(address: str, spec: EnvironmentSpec, deadline: float, *, puppet_ca: bool = False) -> str:
        services = (PUPPET_CA,) if puppet_ca else (DNS, BROKER)
        report = probe_master_for_spec(address, spec, max(1.0, deadline - time.monotonic()), log_reader=reader,
                                       services=services)
        report.raise_if_not_ready()
        return report.summary()

    return probe
