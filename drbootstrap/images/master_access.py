"""Reach a freshly booted master over SSH (host key pinned from its console) to push recipes/ and arm tokens.

    target = master_ssh_target(address, console_text, Path("~/.ssh/id_ed25519"))
    push_recipes(target, Path("recipes"), node_dir)          # what puppetserver then serves
    arm_autosign_tokens(target, config_dir, {"db01.demo.internal": token_digest(token)})

The master image prints its host keys between -----BEGIN/END SSH HOST KEY KEYS----- on the
console; a server offering another key is refused (drbootstrap.ssh.HostKeyMismatchError).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from drbootstrap.images.autosign import AutosignError
from drbootstrap.ssh import SshError, SshSession, SshTarget, parse_console_host_keys

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def master_ssh_target(
    address: str, console_text: str, private_key_path: Path, *, port: int = 22, name: str = "master",
    timeout: float = 10.0,
) -> SshTarget:
    """Root on the master at ADDRESS, trusting only the host keys its console printed."""
    return SshTarget(host=address, pinned_keys=parse_console_host_keys(console_text), port=port,
                     private_key_path=Path(private_key_path), timeout=timeout, name=name)


def recipes_path_on_master(node_dir: str) -> str:
    """Where the master's puppetserver reads the production environment (images/master/boot.sh)."""
    return f"{node_dir.rstrip('/')}/puppet/code/environments/production"


def push_recipes(target: SshTarget, recipes_dir: Path, node_dir: str) -> int:
    """Swap RECIPES_DIR (manifests/, modules/) in whole as the master's production code; file count."""
    if not (Path(recipes_dir) / "manifests").is_dir():
        raise SshError(f"{recipes_dir} has no manifests/ directory", hint="push the recipes/ folder of drbootstrap")
    with SshSession(target) as session:
        return session.push_tree(Path(recipes_dir), recipes_path_on_master(node_dir), replace=True)


def arm_autosign_tokens(
    target: SshTarget, config_dir: str, digests: dict[str, str], *, python: str = "python3"
) -> None:
    """Record each certname's token digest in the master's tokens file (the tokens never travel)."""
    for certname, digest in digests.items():
        if not _DIGEST.match(digest):
            raise AutosignError(f"autosign digest for {certname} is not a SHA-256 hex digest",
                                hint="pass token_digest(token), never the token")
    program = (
        "import json, sys; from pathlib import Path; from drbootstrap.images.autosign import record_token_digest\n"
        "for name, digest in json.loads(sys.argv[2]).items(): record_token_digest(Path(sys.argv[1]), name, digest)"
    )
    command = shlex.join([python, "-c", program, f"{config_dir.rstrip('/')}/autosign-tokens.json", json.dumps(digests)])
    with SshSession(target) as session:
        result = session.run(command, timeout=60)
    if result.exit_status != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise AutosignError(f"arming autosign tokens on {target.label} failed (exit {result.exit_status}): {last}",
                            hint="check that drbootstrap is installed for that Python on the master")
