"""NodeAccess over SSH: commands in a node, trusting only the host keys its console output printed
(drbootstrap.ssh), with the environment's operator key; the master's Puppet CA through it (every cloud).
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drbootstrap.errors import ProviderError

if TYPE_CHECKING:
    from drbootstrap.providers.base import Provider
    from drbootstrap.ssh import SshTarget

# The images' defaults (images/master/boot.sh): where a node keeps its config and state.
CONFIG_DIR = "/etc/drbootstrap"
NODE_DIR = "/var/lib/drbootstrap/node"


class SshNodeAccess:
    """The NodeAccess seam over SSH, and the one place for the master's Puppet CA operations
    (recipes, autosign tokens, signing). Host keys are pinned from the node's console output (the
    provider's console_text); a node without one is refused, not trusted. DIRS_FOR gives a node's
    config_dir/node_dir/python when they are not the image's defaults (the local cloud keeps them
    under the state directory)."""

    def __init__(self, provider: Provider, *, dirs_for: Callable[[str], dict[str, Any]] | None = None) -> None:
        self.provider, self.dirs_for = provider, dirs_for
        self._public_key: str | None = None
        self._public_key_lock = threading.Lock()

    @property
    def private_key_path(self) -> Path:
        return self.provider.scope.operator_key_path

    def node_dirs(self, hostname: str) -> dict[str, Any]:
        """The node's boot settings besides the spec's: the image's default directories, and the
        operator's public key, which lets drbootstrap in over SSH (without it the images start no
        sshd and print no host key: nothing could reach the master for its recipes and CA)."""
        if self.dirs_for is not None:
            return self.dirs_for(hostname)
        return {"ssh_authorized_keys": (self.operator_public_key(),)}

    def operator_public_key(self) -> str:
        """The provider's operator public key, read (or made) once for every node: loading the
        private key checks it (an RSA key's check is costly), and launches ask from many threads."""
        with self._public_key_lock:
            if self._public_key is None:
                self._public_key = self.provider.operator_public_key()
            return self._public_key

    def node_path(self, hostname: str, path: str) -> str:
        return path

    def target(self, node_id: str) -> SshTarget:
        """Root on the node at its reachable address, host keys pinned from its console output."""
        from drbootstrap.images.master_access import master_ssh_target

        node = self.provider.get_node(node_id)
        if node is None:
            raise ProviderError(f"node {node_id} is not known to the cloud", hint="run `drbootstrap up` again")
        address = self.provider.addresses(node).reachable
        if address is None:
            raise ProviderError(f"node {node.name} has no address yet", hint="wait for it to run, then retry")
        return master_ssh_target(address, self.provider.console_text(node), self.private_key_path, name=node.name)

    def run(self, node_id: str, command: str, timeout: float) -> tuple[int, str]:
        from drbootstrap.ssh import run_command

        result = run_command(self.target(node_id), command, timeout=timeout)
        return result.exit_status, "\n".join((result.stdout + result.stderr).splitlines()[-30:])

    def push_recipes(self, master_id: str, source: Path) -> str:
        from drbootstrap.images.master_access import push_recipes

        target = self.target(master_id)
        count = push_recipes(target, source, str(self.node_dirs(target.name).get("node_dir", NODE_DIR)))
        pinned = ", ".join(str(key) for key in target.pinned_keys)
        return f"{count} recipe files pushed over SSH to {target.label}, host key {pinned} pinned from its console"

    def arm_autosign(self, master_id: str, certname: str, digest: str) -> None:
        from drbootstrap.images.master_access import arm_autosign_tokens

        target = self.target(master_id)
        dirs = self.node_dirs(target.name)
        arm_autosign_tokens(target, str(dirs.get("config_dir", CONFIG_DIR)), {certname: digest},
                            python=str(dirs.get("python", "python3")))

    def sign_certificate(self, master_id: str, certname: str) -> None:
        """Sign certname's waiting request with the master's own Puppet configuration."""
        target = self.target(master_id)
        puppet_conf = f"{self.node_dirs(target.name).get('node_dir', NODE_DIR)}/puppet/puppet.conf"
        status, output = self.run(master_id, f"puppetserver ca sign --config {shlex.quote(puppet_conf)} "
                                  f"--certname {shlex.quote(certname)}", 120)
        if status != 0:
            raise ProviderError(f"signing {certname} on the master failed (exit {status}): {output.splitlines()[-1:]}")
