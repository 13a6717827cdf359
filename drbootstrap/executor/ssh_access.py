"""NodeAccess over SSH: commands in a node, trusting only the host keys its console output printed
(drbootstrap.ssh), with the environment's key; the master's recipes and tokens through it (every cloud).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drbootstrap.errors import ProviderError
from drbootstrap.providers.cloud import Pacing

if TYPE_CHECKING:
    from drbootstrap.ssh import SshTarget

# The images' defaults (images/master/boot.sh): where a node keeps its config and state.
CONFIG_DIR = "/etc/drbootstrap"
NODE_DIR = "/var/lib/drbootstrap/node"


class SshNodeAccess:
    """The NodeAccess seam over SSH. Console output comes from the driver (EC2's GetConsoleOutput) or,
    on the local cloud, the node's console log; a node with neither cannot have its host key pinned,
    so it is refused, not trusted. DIRS_FOR gives a node's config_dir/node_dir/python when they are
    not the image's defaults (the local cloud keeps them under the state directory)."""

    def __init__(self, driver_factory: Callable[[], Any], private_key_path: Path, pacing: Pacing,
                 *, dirs_for: Callable[[str], dict[str, Any]] | None = None) -> None:
        self.driver_factory, self.private_key_path, self.pacing = driver_factory, private_key_path, pacing
        self.dirs_for = dirs_for

    def node_dirs(self, hostname: str) -> dict[str, Any]:
        return self.dirs_for(hostname) if self.dirs_for is not None else {}  # {}: the image's defaults

    def node_path(self, hostname: str, path: str) -> str:
        return path

    def target(self, node_id: str) -> SshTarget:
        """Root on the node at its reachable address, host keys pinned from its console output."""
        from drbootstrap.images.master_access import master_ssh_target

        driver = self.driver_factory()
        nodes = self.pacing.call(driver, f"find node {node_id}", lambda: driver.list_nodes(ex_node_ids=[node_id]))
        if not nodes:
            raise ProviderError(f"node {node_id} is not known to the cloud", hint="run `drbootstrap up` again")
        node = nodes[0]
        address = (list(node.public_ips or []) + list(node.private_ips or []) or [None])[0]
        if address is None:
            raise ProviderError(f"node {node.name} has no address yet", hint="wait for it to run, then retry")
        return master_ssh_target(address, self._console_text(driver, node), self.private_key_path, name=node.name)

    def _console_text(self, driver: Any, node: Any) -> str:
        if callable(getattr(driver, "ex_get_console_output", None)):
            console = self.pacing.call(driver, f"console output of {node.name}",
                                       lambda: driver.ex_get_console_output(node))
            return console.get("output", "") if isinstance(console, dict) else str(console or "")
        console_log = (getattr(node, "extra", None) or {}).get("console_log")
        if console_log and Path(console_log).is_file():
            return Path(console_log).read_text(errors="replace")  # the local cloud's serial console
        raise ProviderError(f"the {driver.name} driver gives no console output, so the SSH host key of {node.name} "
                            "cannot be pinned", hint="use a provider whose driver has ex_get_console_output")

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
        status, output = self.run(master_id, f"puppetserver ca sign --certname {shlex.quote(certname)}", 120)
        if status != 0:
            raise ProviderError(f"signing {certname} on the master failed (exit {status}): {output.splitlines()[-1:]}")
