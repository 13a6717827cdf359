"""The user-data a node is launched with, from the spec, its key (its own ed25519 key, or the shared
PSK), the node's own directories and, over stomp+ssl, the environment's broker CA (and on the
master its issuing CA); on a master with `master.restore`, where to fetch its earlier state; on
the master and the broker nodes of a broker cluster, its Erlang cookie."""

from __future__ import annotations

from typing import Any

from drbootstrap.executor.context import NodeRuntime, RunContext
from drbootstrap.executor.secrets import load_or_create_broker_ca, load_or_create_broker_cookie
from drbootstrap.images.from_spec import broker_uses_tls, master_boot_config, worker_boot_config
from drbootstrap.images.userdata import render_user_data
from drbootstrap.spec.broker_nodes import BROKER_ROLE


def user_data_for(ctx: RunContext, node: NodeRuntime, *, autosign: str | None = None, unarmed: bool = False) -> str:
    """The node's cloud-config text: its settings, its agent key (its own ed25519 key and the
    operator's public key, or the PSK), its autosign token (unarmed: launched without one, its
    certificate to be signed explicitly, as with autosign manual)."""
    dirs: dict[str, Any] = dict(ctx.access.node_dirs(node.hostname))
    keys: dict[str, Any]
    if ctx.keys is not None:
        keys = {"node_key": ctx.keys.nodes[node.hostname], "operator_public_key": ctx.keys.operator_public_pem}
    else:
        keys = {"agent_key": ctx.psk or None}
    spec = ctx.spec
    if unarmed:
        puppet = spec.master.puppet.model_copy(update={"autosign": "manual"})
        spec = spec.model_copy(update={"master": spec.master.model_copy(update={"puppet": puppet})})
    tls: dict[str, Any] = {}
    if broker_uses_tls(spec):
        issuer = load_or_create_broker_ca(ctx.paths, spec.environment)
        tls = {"broker_ca": ctx.paths.broker_ca.read_text()}
        if node.planned.is_master:
            tls["broker_issuer"] = issuer
    if spec.master.broker.replicas > 1 and (node.planned.is_master or node.planned.role == BROKER_ROLE):
        dirs["broker_cookie"] = load_or_create_broker_cookie(ctx.paths)  # a node of the broker cluster
    if node.planned.is_master:
        offered = None
        if ctx.master_state is not None:  # master.restore: its earlier state, fetched before puppetserver starts
            from drbootstrap.backups.master_state import offer_master_state

            offered = offer_master_state(ctx, ctx.master_state)
        config = master_boot_config(spec, **keys, **tls, master_state=offered, **dirs)
    else:
        assert ctx.master is not None and ctx.master.address is not None
        config = worker_boot_config(spec, node.hostname, master_address=ctx.master.address,
                                    autosign_token=autosign, **tls, **keys, **dirs)
    return render_user_data(config, allow_gzip=False).decode()
