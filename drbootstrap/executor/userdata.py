"""The user-data a node is launched with, from the spec, the PSK and the node's own directories."""

from __future__ import annotations

from drbootstrap.executor.context import NodeRuntime, RunContext
from drbootstrap.images.from_spec import master_boot_config, worker_boot_config
from drbootstrap.images.userdata import render_user_data


def user_data_for(ctx: RunContext, node: NodeRuntime, *, autosign: str | None = None, unarmed: bool = False) -> str:
    """The node's cloud-config text: its settings, the PSK as its agent key, its autosign token
    (unarmed: launched without one, its certificate to be signed explicitly, as with autosign manual)."""
    dirs = ctx.access.node_dirs(node.hostname)
    spec = ctx.spec
    if unarmed:
        puppet = spec.master.puppet.model_copy(update={"autosign": "manual"})
        spec = spec.model_copy(update={"master": spec.master.model_copy(update={"puppet": puppet})})
    if node.planned.is_master:
        config = master_boot_config(spec, agent_key=ctx.psk or None, **dirs)
    else:
        assert ctx.master is not None and ctx.master.address is not None
        config = worker_boot_config(spec, node.hostname, master_address=ctx.master.address,
                                    agent_key=ctx.psk or None, autosign_token=autosign, **dirs)
    return render_user_data(config, allow_gzip=False).decode()
