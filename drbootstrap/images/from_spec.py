"""Boot settings for the master and each worker, taken from the environment spec.

The executor calls these, then `render_user_data`; the secrets (agent key: the shared PSK or the
node's own ed25519 key, autosign token) are passed in by the caller, which owns where they are
generated and kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drbootstrap.images.userdata import DEFAULT_NODE_DIR, MasterStateToRestore, NodeBootConfig, UserDataError
from drbootstrap.messaging.keys import NodeKey
from drbootstrap.spec.broker_nodes import broker_fqdns
from drbootstrap.spec.models import EnvironmentSpec, NodeGroup

if TYPE_CHECKING:
    from drbootstrap.messaging.broker_ca import CertifiedKey


def controller_fqdn(spec: EnvironmentSpec) -> str:
    return spec.fqdn(spec.master.hostname)


def broker_uses_tls(spec: EnvironmentSpec) -> bool:
    """`master.broker.tls` when given, else `security.tls.enabled` when given, else the provider's
    default: stomp+ssl on every cloud but the local one, whose nodes share a private bridge on the
    controller's own machine (there `tls: true` asks for it)."""
    if spec.master.broker.tls is not None:
        return spec.master.broker.tls
    if spec.security.tls.enabled is not None:
        return spec.security.tls.enabled
    from drbootstrap.providers.registry import provider_class

    return provider_class(spec.provider.name).broker_tls_by_default


def _broker_protocol(spec: EnvironmentSpec) -> str:
    return "stomp+ssl" if broker_uses_tls(spec) else "stomp"


def master_boot_config(
    spec: EnvironmentSpec,
    *,
    agent_key: str | None = None,
    agent_key_reference: str | None = None,
    node_key: NodeKey | None = None,
    operator_public_key: str | None = None,
    master_address: str | None = None,
    broker_ca: str | None = None,
    broker_issuer: CertifiedKey | None = None,
    master_state: MasterStateToRestore | None = None,
    **paths: Any,
) -> NodeBootConfig:
    """The master's boot settings; MASTER_ADDRESS only when known before launch (else it finds its own).
    Over stomp+ssl: BROKER_CA, the environment's CA, and BROKER_ISSUER, the master's issuing CA under
    it, with which the master issues its broker's certificate for the address it finds. MASTER_STATE:
    the archive boot.sh puts back before puppetserver starts (`master.restore`)."""
    tls = broker_uses_tls(spec)
    node_dir = str(paths.get("node_dir") or DEFAULT_NODE_DIR)
    return NodeBootConfig(
        hostname=spec.master.hostname,
        role="master",
        image="master",
        broker_host=master_address or controller_fqdn(spec),
        upstream_dns=tuple(str(a) for a in spec.master.upstream_dns),
        broker_ca=broker_ca if tls else None,
        broker_issuer_cert=broker_issuer.cert_pem if tls and broker_issuer else None,
        broker_issuer_key=broker_issuer.key_pem if tls and broker_issuer else None,
        backup_settings=master_state_agent_settings(spec, node_dir, str(paths.get("python") or "python3")),
        master_state=master_state,
        **_shared_settings(spec, master_address, agent_key, agent_key_reference) | _own_key_settings(
            node_key, operator_public_key),
        **paths,
    )


MASTER_STATE_DUMP = "master-state"  # the master's built-in dump: its Puppet CA, code and configuration


def master_state_agent_settings(spec: EnvironmentSpec, node_dir: str, python: str) -> str | None:
    """The master agent's `dumps:` lines when the spec has a bucket: the one dump `master-state`
    (drbootstrap.images.master_state archive; restored by boot.sh, never by the agent)."""
    if spec.buckets is None:
        return None
    import shlex

    import yaml

    command = shlex.join([python, "-m", "drbootstrap.images.master_state", "archive", "--node-dir", node_dir])
    refuse = "echo 'the master state is restored when the master boots (master.restore)' >&2; exit 1"
    return yaml.safe_dump({"dumps": {"commands": {MASTER_STATE_DUMP: {
        "command": command, "restore": refuse, "timeout": 600.0}}}}, sort_keys=True, default_flow_style=False)


def _own_key_settings(node_key: NodeKey | None, operator_public_key: str | None) -> dict[str, Any]:
    """ed25519: the node's own private key (never another node's) and the operator's public key."""
    if node_key is None:
        return {}
    return {"agent_key": node_key.private_pem, "agent_key_id": node_key.key_id,
            "operator_public_key": operator_public_key}


def _shared_settings(spec: EnvironmentSpec, master_address: str | None, agent_key: str | None,
                     agent_key_reference: str | None) -> dict[str, Any]:
    """What every node of the environment is told alike: domain, broker (and the broker cluster's
    other nodes), controller, Puppet, PSK."""
    if spec.master.broker.replicas > 1 and broker_uses_tls(spec):
        raise UserDataError(f"master.broker.replicas: {spec.master.broker.replicas} over stomp+ssl: the broker "
                            "nodes have no certificates yet", hint="set master.broker.tls: false, or replicas: 1")
    return {
        "environment": spec.environment,
        "domain": str(spec.domain),
        "broker_port": spec.master.broker.port,
        "broker_protocol": _broker_protocol(spec),
        "broker_kind": spec.master.broker.kind,
        "broker_replicas": tuple(broker_fqdns(spec)),
        "master_address": master_address,
        "controller_name": controller_fqdn(spec),
        "puppet_server": controller_fqdn(spec),
        "puppet_mode": spec.master.puppet.mode,
        "agent_key": agent_key,
        "agent_key_reference": agent_key_reference,
    }


def group_of(spec: EnvironmentSpec, hostname: str) -> NodeGroup:
    for group in spec.nodes:
        if hostname in group.all_hostnames():
            return group
    known = ", ".join(spec.worker_hostnames()) or "none"
    raise UserDataError(f"no node group names {hostname!r}", hint=f"the spec's workers are: {known}")


def needs_autosign_token(spec: EnvironmentSpec) -> bool:
    return spec.master.puppet.mode == "server" and spec.master.puppet.autosign == "token"


def worker_boot_config(
    spec: EnvironmentSpec,
    hostname: str,
    *,
    master_address: str,
    agent_key: str | None = None,
    agent_key_reference: str | None = None,
    node_key: NodeKey | None = None,
    operator_public_key: str | None = None,
    autosign_token: str | None = None,
    broker_ca: str | None = None,
    **paths: Any,
) -> NodeBootConfig:
    """HOSTNAME's boot settings: its role from its group, the master as resolver and broker (over
    stomp+ssl: BROKER_CA, the environment's CA, is what its agent verifies the broker by)."""
    group = group_of(spec, hostname)
    if needs_autosign_token(spec) and not autosign_token:
        raise UserDataError(
            f"{hostname}: the spec asks for token autosign but no token was issued for it",
            hint="issue one with drbootstrap.images.autosign.new_token() and arm it on the master",
        )
    return NodeBootConfig(
        hostname=hostname,
        role=str(group.role),
        image="master" if group.image == "master" else "worker",
        broker_host=master_address,
        autosign_token=autosign_token if needs_autosign_token(spec) else None,
        broker_ca=broker_ca if broker_uses_tls(spec) else None,
        backup_settings=agent_backup_settings(group, str(paths.get("recipe_root") or "")),
        **_shared_settings(spec, master_address, agent_key, agent_key_reference) | _own_key_settings(
            node_key, operator_public_key),
        **paths,
    )


def agent_backup_settings(group: NodeGroup, recipe_root: str = "") -> str | None:
    """The agent.yaml `backup:` and `dumps:` lines for a node of GROUP: each volume marked for
    backup, where it is mounted on the node (under RECIPE_ROOT on the local cloud) and its hooks;
    each application dump's commands; None when the group has neither."""
    import yaml

    volumes = {}
    for volume in group.volumes:
        if volume.backup is None:
            continue
        entry: dict[str, Any] = {"path": recipe_root + str(volume.mount),
                                 "hook_timeout": float(volume.backup.hook_timeout_seconds)}
        if volume.backup.pre_snapshot:
            entry["pre_snapshot"] = volume.backup.pre_snapshot
        if volume.backup.post_snapshot:
            entry["post_snapshot"] = volume.backup.post_snapshot
        volumes[str(volume.name)] = entry
    settings: dict[str, Any] = {"backup": {"volumes": volumes}} if volumes else {}
    if group.dumps:
        settings["dumps"] = {"root": recipe_root, "commands": {
            str(d.name): {"command": d.command, "restore": d.restore, "timeout": float(d.timeout_seconds)}
            for d in group.dumps}}
    if not settings:
        return None
    return yaml.safe_dump(settings, sort_keys=True, default_flow_style=False)
