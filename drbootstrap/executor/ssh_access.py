"""NodeAccess on a real cloud: commands in a node over SSH, trusting only the host keys its console
output printed (drbootstrap.ssh), with the environment's key pair; the master's files through it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drbootstrap.errors import ProviderError
from drbootstrap.providers.cloud import Pacing

# The images' defaults (images/master/boot.sh): where a node keeps its config and state.
CONFIG_DIR = "/etc/drbootstrap"
NODE_DIR = "/var/lib/drbootstrap/node"


class SshNodeAccess:
    """The NodeAccess seam over SSH. Console output comes from the driver (EC2's GetConsoleOutput);
    a cloud whose driver has no console output cannot pin host keys, so it is refused, not trusted."""

    def __init__(self, driver_factory: Callable[[], Any], private_key_path: Path, pacing: Pacing) -> None:
        self.driver_factory, self.private_key_path, self.pacing = driver_factory, private_key_path, pacing

    def node_dirs(self, hostname: str) -> dict[str, str]:
        return {}  # the image's defaults

    def node_path(self, hostname: str, path: str) -> str:
        return path

    def target(self, node_id: str) -> Any:
        """Root on the node at its reachable address, host keys pinned from its console output."""
        from drbootstrap.images.master_access import master_ssh_target

        driver = self.driver_factory()
        if not callable(getattr(driver, "ex_get_console_output", None)):
            raise ProviderError(f"the {driver.name} driver gives no console output, so the node's SSH host key "
                                "cannot be pinned", hint="use a provider whose driver has ex_get_console_output")
        nodes = self.pacing.call(driver, f"find node {node_id}", lambda: driver.list_nodes(ex_node_ids=[node_id]))
        if not nodes:
            raise ProviderError(f"node {node_id} is not known to the cloud", hint="run `drbootstrap up` again")
        node = nodes[0]
        address = (list(node.public_ips or []) + list(node.private_ips or []) or [None])[0]
        if address is None:
            raise ProviderError(f"node {node.name} has no address yet", hint="wait for it to run, then retry")
        console = self.pacing.call(driver, f"console output of {node.name}",
                                   lambda: driver.ex_get_console_output(node))
        text = console.get("output", "") if isinstance(console, dict) else str(console or "")
        return master_ssh_target(address, text, self.private_key_path, name=node.name)

    def run(self, node_id: str, command: str, timeout: float) -> tuple[int, str]:
        from drbootstrap.ssh import run_command

        result = run_command(self.target(node_id), command, timeout=timeout)
        return result.exit_status, "\n".join((result.stdout + result.stderr).splitlines()[-30:])

    def push_recipes(self, master_id: str, source: Path) -> str:
        from drbootstrap.images.master_access import push_recipes

        count = push_recipes(self.target(master_id), source, NODE_DIR)
        return f"{count} recipe files pushed over SSH"

    def arm_autosign(self, master_id: str, certname: str, digest: str) -> None:
        from drbootstrap.images.master_access import arm_autosign_tokens

        arm_autosign_tokens(self.target(master_id), CONFIG_DIR, {certname: digest})

    def sign_certificate(self, master_id: str, certname: str) -> None:
        status, output = self.run(master_id, f"puppetserver ca sign --certname {shlex.quote(certname)}", 120)
        if status != 0:
            raise ProviderError(f"signing {certname} on the master failed (exit {status}): {output.splitlines()[-1:]}")
