"""The steps of one node's recovery: small named functions over a RunContext and the node.

Each returns a StepResult (a one-line detail for people and typed facts for later steps), or
raises StepFailed (or any DrbError) saying what failed, with the log tail that explains it, or
StartOver (NodeLost, Relaunch) when the node must be launched anew (executor/outcomes.py). Steps
read the journal but never write it: the runner (run.py) records every result. Launch and boot are
in launch_steps.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drbootstrap.errors import DrbError, ProviderError, WaitTimeoutError
from drbootstrap.executor.context import Fleet, NodeRuntime, RunContext
from drbootstrap.executor.volume_restore import verify_restored_volumes, wanted_with_backups
from drbootstrap.images.from_spec import broker_uses_tls
from drbootstrap.journal import Fact
from drbootstrap.plan import Step

if TYPE_CHECKING:
    pass
from drbootstrap.executor.cloud_request import volumes_wanted
from drbootstrap.executor.launch_steps import boot, launch
from drbootstrap.executor.outcomes import AUTOSIGN_ARMED, StepFailed, StepFunction, StepResult


def services(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """The master's DNS and STOMP answer (what a worker needs until its Puppet step); the recipes
    are where its Puppet server reads them. The Puppet CA is the later step puppet_ca."""
    assert node.reachable_address is not None
    deadline = ctx.clock.monotonic() + ctx.options.services_timeout
    detail = ctx.probe_services(node.reachable_address, ctx.spec, deadline)
    if broker_uses_tls(ctx.spec):
        detail += "; " + verify_broker_certificate(ctx, node)
    if ctx.spec.master.restore.code:
        detail += "; recipes not pushed: the restored code is served (master.restore.code)"
    elif ctx.spec.master.puppet.mode == "server" and ctx.recipes_dir is not None:
        detail += "; " + ctx.access.push_recipes(node.provider_node.id, ctx.recipes_dir)
    return StepResult(detail)


def verify_broker_certificate(ctx: RunContext, node: NodeRuntime) -> str:
    """The broker presents a certificate of the environment's CA naming the master (what the RPC
    client checks, wherever it dials the master); a one-line detail."""
    from drbootstrap.broker import stomp_connect_probe
    from drbootstrap.images.from_spec import controller_fqdn

    assert node.reachable_address is not None
    ca = ctx.paths.broker_ca_chain
    ok, why = stomp_connect_probe(node.reachable_address, ctx.spec.master.broker.port, timeout=5.0, tls_ca=ca,
                                  tls_server_name=controller_fqdn(ctx.spec))
    if not ok:
        raise StepFailed(f"the broker does not present a certificate of this environment's CA ({ca}): {why}",
                         hint="was the master launched before this environment had a broker CA? relaunch it "
                              "(down, then up) or set master.broker.tls: false for plain STOMP")
    return f"stomp+ssl verified against the environment's broker CA for {controller_fqdn(ctx.spec)}"


def puppet_ca(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """The master's Puppet CA answers (server mode): what the workers' Puppet steps wait for."""
    if ctx.spec.master.puppet.mode != "server":
        return StepResult("not needed: apply mode")
    assert node.reachable_address is not None
    deadline = ctx.clock.monotonic() + ctx.options.services_timeout
    return StepResult(ctx.probe_services(node.reachable_address, ctx.spec, deadline, puppet_ca=True))


# A run relies on the master's services only once they answer again, even when an earlier run found
# them up (one may have died since, the master may have rebooted): a probe that returns at once when
# they answer, and waits at most this long (the master's supervision restarts a dead service).
SERVICES_RECHECK_SECONDS = 180.0


def services_still_answer(ctx: RunContext, node: NodeRuntime, *, puppet_ca: bool = False) -> StepResult:
    """The services (or puppet_ca) step is done in the journal: probe again, within a bounded time."""
    assert node.reachable_address is not None
    deadline = ctx.clock.monotonic() + min(ctx.options.services_timeout, SERVICES_RECHECK_SECONDS)
    try:
        detail = ctx.probe_services(node.reachable_address, ctx.spec, deadline, puppet_ca=puppet_ca)
        return StepResult("done earlier; still answering: " + detail)
    except DrbError as error:
        raise StepFailed(f"{node.hostname}: answered in an earlier run, but now {error.message}",
                         hint=error.hint, log_tail=getattr(error, "log_tail", "")) from None


def puppet_ca_still_answers(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """The puppet_ca step is done in the journal: the Puppet CA answers again (server mode)."""
    if ctx.spec.master.puppet.mode != "server":
        return StepResult("not needed: apply mode")
    return services_still_answer(ctx, node, puppet_ca=True)


# Steps that a later run checks again when the journal says they are done (before relying on them).
RECHECKS: dict[Step, StepFunction] = {Step.SERVICES: services_still_answer, Step.PUPPET_CA: puppet_ca_still_answers}


def recheck_done(ctx: RunContext, node: NodeRuntime, step: Step) -> str | None:
    """A done step's re-check: its detail, None when the step has none; raises when it fails."""
    recheck = RECHECKS.get(step)
    return recheck(ctx, node).detail if recheck is not None else None


# ---- names ------------------------------------------------------------------------------------


def register_name(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """Forward and reverse entries in the master's DNS, through its dns agent; for the master,
    its controller name on the site's DNS server (RFC 2136 + TSIG) where the spec asks."""
    if node.planned.is_master:
        return StepResult(register_controller_name(ctx, node))
    if node.address is None:
        raise StepFailed(f"{node.hostname}: the cloud gave the node no address yet")
    master = _master(ctx)
    ctx.fleet().call(master.fqdn, "dns", "add", {"name": node.fqdn, "address": node.address, "replace": True},
                     ctx.options.rpc_timeout)
    return StepResult(f"{node.fqdn} <-> {node.address}")


def register_controller_name(ctx: RunContext, node: NodeRuntime) -> str:
    dynamic = ctx.spec.master.dynamic_dns
    if dynamic is None:
        return "no dynamic_dns in the spec: the master's own DNS holds its name"
    from drbootstrap.dns import rfc2136

    target = rfc2136.target_from_spec(dynamic, ctx.spec.master.hostname)
    assert node.address is not None
    rfc2136.register_address(target.server, target.zone, target.name, node.address, target.key)
    return f"{target.name}.{target.zone} -> {node.address} on {target.server}"


def take_name(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """The worker answers under its spec name: at boot (reverse DNS), else after a reboot asked of its agent."""
    fleet = ctx.fleet()
    # The name is in the master's DNS before the node boots, so it usually names itself at boot.
    if node.fqdn in _wait_for(ctx, fleet, [node.fqdn], min(15.0, ctx.options.name_timeout)):
        return StepResult(f"answers as {node.fqdn} (named at boot)")
    assert node.address is not None
    old = fleet.identity_at(node.address, timeout=ctx.options.name_timeout / 3)
    if old is None:
        raise StepFailed(f"{node.hostname}: no agent answers at {node.address}",
                         hint="check the node's agent log (DRB_NODE_DIR/agent.log) and its broker settings")
    if old == node.fqdn:
        return StepResult(f"answers as {node.fqdn} (named at boot)")
    fleet.call(old, "reboot", "reboot", {"delay": 0.5}, ctx.options.rpc_timeout)
    if node.fqdn not in _wait_for(ctx, fleet, [node.fqdn], ctx.options.name_timeout):
        raise WaitTimeoutError(f"{node.hostname}: rebooted as {old} but did not come back as {node.fqdn} "
                               f"within {ctx.options.name_timeout:.0f} s",
                               hint="check the master's PTR record for the node and its boot.log")
    return StepResult(f"renamed from {old} by reboot")


def discover(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """The node's agent answers discovery under its name."""
    started = ctx.clock.monotonic()
    if node.fqdn not in _wait_for(ctx, ctx.fleet(), [node.fqdn], ctx.options.discover_timeout):
        raise WaitTimeoutError(f"{node.hostname}: no agent answered as {node.fqdn} within "
                               f"{ctx.options.discover_timeout:.0f} s", hint="check the node's agent log")
    return StepResult(f"answered as {node.fqdn} after {ctx.clock.monotonic() - started:.1f} s")


def _wait_for(ctx: RunContext, fleet: Fleet, identities: list[str], timeout: float) -> set[str]:
    deadline = ctx.clock.monotonic() + timeout
    found: set[str] = set()
    while True:
        found |= fleet.discover([i for i in identities if i not in found], timeout=min(1.0, timeout))
        if found >= set(identities) or ctx.clock.monotonic() >= deadline:
            return found
        ctx.clock.sleep(0.5)


def _master(ctx: RunContext) -> NodeRuntime:
    if ctx.master is None:
        raise ProviderError("the master is not up", hint="run `drbootstrap up` again")
    return ctx.master


# ---- Puppet -----------------------------------------------------------------------------------


def puppet_sign(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """Server mode: the certificate is signed by policy (token armed at launch) or here, explicitly."""
    puppet = ctx.spec.master.puppet
    if puppet.mode == "apply":
        return StepResult("not needed: apply mode")
    launched = ctx.journal.node(node.hostname).steps.get(Step.LAUNCH)
    # A launch recorded before launches left facts counts as armed, as token policy then always was.
    armed = launched is not None and launched.facts.get(AUTOSIGN_ARMED, True) is True
    if puppet.autosign == "token" and armed:
        return StepResult("policy autosign: one-time token armed at launch")
    # manual: the agent's first contact submits its CSR (and fails waiting); then sign it.
    try:
        ctx.fleet().call(node.fqdn, "puppet", "runonce", {"force": True}, ctx.options.puppet_timeout)
    except DrbError:
        pass  # expected: the certificate is not signed yet
    with ctx.master_ssh_slots:
        ctx.access.sign_certificate(_master(ctx).provider_node.id, node.fqdn)
    return StepResult(f"signed {node.fqdn} on the master")


def describe_puppet_changes(data: dict[str, Any]) -> str:
    """A run's outcome in words: "applied 3 changes" (Puppet's detailed exit code 2 is success with
    changes, not an error), "applied changes" when the summary does not count them, or "no changes"."""
    if not (data.get("changed") or data.get("exitcode") == 2):
        return "no changes"
    summary = data.get("summary")
    resources = summary.get("resources") if isinstance(summary, dict) else None
    count = resources.get("changed") if isinstance(resources, dict) else None
    if isinstance(count, int) and count > 0:
        return f"applied {count} change{'s' * (count != 1)}"
    return "applied changes"


def puppet_run(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """One Puppet run, forced, reported."""
    try:
        data = ctx.fleet().call(node.fqdn, "puppet", "runonce", {"force": True}, ctx.options.puppet_timeout)
    except StepFailed:
        raise
    except DrbError as error:
        tail = getattr(error, "data", {}) or {}
        raise StepFailed(f"{node.hostname}: Puppet run failed: {error.message}",
                         hint="see the Puppet output in the report's log tail",
                         log_tail=str(tail.get("output", "")) if isinstance(tail, dict) else "") from None
    # Puppet's detailed exit code 2 means "applied changes": success, not an error.
    changed = describe_puppet_changes(data)
    adopted = "; adopted the run already in flight" if data.get("adopted") else ""
    return StepResult(f"{changed} in {data.get('duration')} s{adopted}")


def puppet_enable(ctx: RunContext, node: NodeRuntime) -> StepResult:
    ctx.fleet().call(node.fqdn, "puppet", "enable", {}, ctx.options.rpc_timeout)
    return StepResult("enabled")


# ---- data and checks --------------------------------------------------------------------------


def volumes(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """Each of the spec's volumes made (from its chosen backup, else its snapshot) and attached, as
    the provider does it; those restored from a backup verified (executor.volume_restore)."""
    wanted = wanted_with_backups(ctx, node, volumes_wanted(node.planned.group))
    done = ctx.provider.attach_volumes(node.provider_node, node.hostname, wanted,
                                       lambda path: ctx.access.node_path(node.hostname, path))
    verified, facts = verify_restored_volumes(ctx, node, wanted)
    return StepResult("; ".join([", ".join(done) or "no volumes", *verified]), facts)


def restore(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """The group's restore hooks in order: a command or recipe run in the node, or a dump the node
    fetches from the bucket and restores (drbootstrap.backups.dumps), named with its age."""
    group = node.planned.group
    hooks = group.restore if group is not None else []
    dumps: list[str] = []
    facts: dict[str, Fact] = {}
    for index, hook in enumerate(hooks, 1):
        if hook.dump is not None:
            from drbootstrap.backups.dumps import restore_dump

            restored = restore_dump(ctx, node, hook.dump)
            if restored is None:
                dumps.append(f"no dump {hook.dump} in the bucket yet: nothing restored")
                continue
            dumps.append(restored.detail(ctx.clock.time()))
            facts.update(restored.facts(ctx.clock.time()))
            continue
        command = hook.command or f"sh {_recipes_in_node(ctx)}/restore/{hook.recipe}.sh"
        status, output = ctx.access.run(node.provider_node.id, command, hook.timeout_seconds)
        if status != 0:
            raise StepFailed(f"{node.hostname}: restore hook {index} exited {status}", log_tail=output)
    detail = f"{len(hooks)} hook(s)" if hooks else "nothing to restore"
    return StepResult("; ".join([detail, *dumps]), facts)


def _recipes_in_node(ctx: RunContext) -> str:
    return str(ctx.recipes_dir) if ctx.recipes_dir else "/usr/share/drbootstrap/recipes"


def checks(ctx: RunContext, node: NodeRuntime) -> StepResult:
    from drbootstrap.executor.checks import run_checks

    return StepResult(run_checks(ctx, node))


def broker(ctx: RunContext, node: NodeRuntime) -> StepResult:
    from drbootstrap.executor.broker_readiness import broker_ready

    return broker_ready(ctx, node)


STEP_FUNCTIONS: dict[Step, StepFunction] = {
    Step.LAUNCH: launch, Step.BOOT: boot, Step.SERVICES: services, Step.PUPPET_CA: puppet_ca,
    Step.REGISTER_NAME: register_name,
    Step.TAKE_NAME: take_name, Step.DISCOVER: discover, Step.PUPPET_SIGN: puppet_sign,
    Step.PUPPET_RUN: puppet_run, Step.PUPPET_ENABLE: puppet_enable, Step.VOLUMES: volumes,
    Step.RESTORE: restore, Step.CHECKS: checks, Step.BROKER: broker,
}
