"""Per-client ed25519 keys for an environment: who may sign what, instead of one shared key.

The operator's client signs requests with its own key; each node's agent signs its replies with
its own and trusts only the operator's public key, so a compromised node can sign nothing that
another node accepts. `provision_environment_keys` makes (once) and finds (after) the files;
`agent_key_settings` is what a node's agent config needs. The policy allows the operator key
every agent and action and nobody else anything: tighten it per agent/action as a site needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drbootstrap.messaging.native import safe_name
from drbootstrap.messaging.security import generate_ed25519_key

OPERATOR_KEY_ID = "operator"


@dataclass(frozen=True)
class NodeKey:
    """One node's signing key (private PEM text, to be written 0600 on the node) and key id."""

    key_id: str
    private_pem: str = field(repr=False)


@dataclass(frozen=True)
class EnvironmentKeys:
    """Where the client's key and the nodes' public keys are, and every node's key."""

    operator_key: Path  # the client's private key (0600)
    operator_public_pem: str  # what each agent trusts, as `<OPERATOR_KEY_ID>.pub`
    client_trusted_dir: Path  # the nodes' public keys: the client trusts their replies
    nodes: dict[str, NodeKey]


def provision_environment_keys(keys_dir: Path, node_names: list[str]) -> EnvironmentKeys:
    """Make the operator key and a key per node under `keys_dir` unless they exist; return them all."""
    operator = keys_dir / f"{OPERATOR_KEY_ID}.pem"
    if not operator.exists():
        generate_ed25519_key(operator, keys_dir / f"{OPERATOR_KEY_ID}.pub")
    trusted = keys_dir / "client-trusted"
    trusted.mkdir(parents=True, exist_ok=True)
    nodes: dict[str, NodeKey] = {}
    for name in node_names:
        key_id = safe_name(name, "node name")
        private = keys_dir / "nodes" / f"{key_id}.pem"
        if not private.exists():
            private.parent.mkdir(parents=True, exist_ok=True)
            generate_ed25519_key(private, trusted / f"{key_id}.pub")
        nodes[name] = NodeKey(key_id, private.read_text())
    return EnvironmentKeys(operator, (keys_dir / f"{OPERATOR_KEY_ID}.pub").read_text(), trusted, nodes)


def default_policy(operator_key_id: str = OPERATOR_KEY_ID) -> list[dict[str, Any]]:
    """The operator may call every agent and action; any other key nothing (rules imply deny)."""
    return [{"caller": f"key={operator_key_id}", "agent": "*", "action": "*", "allow": True}]


def agent_key_settings(node: NodeKey, key_file: str, trusted_keys_dir: str) -> dict[str, Any]:
    """The agent config keys for a node whose private key is at `key_file` on the node and whose
    `trusted_keys_dir` holds `operator.pub` (EnvironmentKeys.operator_public_pem)."""
    return {"key_file": key_file, "key_id": node.key_id, "trusted_keys_dir": trusted_keys_dir,
            "policy": default_policy()}
