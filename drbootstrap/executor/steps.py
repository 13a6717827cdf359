"""The steps of one node's recovery: small named functions over a RunContext and the node.

Each returns a StepResult (a one-line detail for people and typed facts for later steps), or
raises StepFailed (or any DrbError) saying what failed, with the log tail that explains it, or
StartOver (NodeLost, Relaunch) when the node must be launched anew. Steps read the journal but
never write it: the runner (run.py) records every result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drbootstrap.errors import DrbError, ProviderError, WaitTimeoutError
from drbootstrap.executor.cloud_request import (
    IMAGE_FACT,
    SIZE_FACT,
    images_for_launch,
    placement_of,
    root_size_gb,
    service_ports,
    tags_for,
    volumes_wanted,
)
from drbootstrap.executor.context import Fleet, NodeRuntime, RunContext
from drbootstrap.executor.secrets import autosign_token
from drbootstrap.executor.userdata import user_data_for
from drbootstrap.executor.volume_restore import verify_restored_volumes, wanted_with_backups
from drbootstrap.images.from_spec import broker_uses_tls
from drbootstrap.journal import Fact
from drbootstrap.plan import Step
from drbootstrap.providers.nodes import LaunchRequest
from drbootstrap.providers.values import VolumeWanted

if TYPE_CHECKING:
    from libcloud.compute.base import Node

# A launch step's fact: True when the node carries a one-time autosign token (puppet_sign then has
# nothing to do), False when it must be signed explicitly at puppet_sign.
AUTOSIGN_ARMED = "autosign_armed"
MASTER_STATE_OFFERED = "master_state_offered"  # launch: the master-state backup its user-data names


@dataclass(frozen=True)
class StepResult:
    """What a step leaves: `detail` for people (journal, events, report), `facts` for later steps."""

    detail: str
    facts: dict[str, Fact] = field(default_factory=dict)


StepFunction = Callable[[RunContext, NodeRuntime], StepResult]


class StepFailed(DrbError):
    """One step of one node failed; `log_tail` holds the lines that say why (console, agent, Puppet)."""

    def __init__(self, message: str, *, hint: str | None = None, log_tail: str = "") -> None:
        super().__init__(message, hint=hint)
        self.log_tail = log_tail


class StartOver(Exception):  # a signal to the runner, not an error
    """The node must be launched anew: the runner forgets it (new generation, new client token) and
    runs its steps again from launch. `reason` is one line for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NodeLost(StartOver):
    """The cloud no longer has the node the journal says was launched (destroyed by hand, reclaimed)."""


class Relaunch(StartOver):
    """The node this launch made cannot be used (its launch was cut short) and has been destroyed."""


# ---- launch and boot --------------------------------------------------------------------------


def launch(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """Make the node exist exactly once: found by tags and client token, else created."""
    record = ctx.journal.node(node.hostname, node.planned.role)
    generation = record.generation + 1
    if record.provider_id:
        found = ctx.provider.find(node.hostname)
        if found is None:
            raise NodeLost("the cloud has no such node any more: launching it anew")
        _adopt(ctx, node, found, record.client_token)
        _, image_facts = images_for_launch(ctx, node.planned)
        launched_from = found.extra.get("image_id") if isinstance(found.extra, dict) else None
        if isinstance(launched_from, str) and launched_from:  # what it was launched from, whatever resolves now
            image_facts[IMAGE_FACT + node.planned.image] = launched_from
        return StepResult(f"found {found.id} (launched by an earlier run)" + _provision(ctx, node), image_facts)
    # Images resolved (and, for the master, subnets, zones and images checked) before anything is created.
    image_id, image_facts = images_for_launch(ctx, node.planned)
    cloud_detail = ""
    if node.planned.is_master:
        prepared = ctx.provider.prepare_environment()
        cloud_detail = f"; {prepared}" if prepared else ""
    token = None
    unarmed = ""
    facts: dict[str, Fact] = dict(image_facts)
    if not node.planned.is_master and _uses_autosign_tokens(ctx) and not _master_reachable(ctx):
        # `up --until launch` on a real cloud: the master is not confirmed up, so no token can be
        # armed on it over SSH. The node goes without one and puppet_sign signs it explicitly.
        unarmed = "; no autosign token (the master was not up): signed explicitly at puppet_sign"
        facts[AUTOSIGN_ARMED] = False
    elif not node.planned.is_master and _uses_autosign_tokens(ctx):
        token = autosign_token(ctx.psk, ctx.spec.environment, node.hostname, generation)
        from drbootstrap.images.autosign import token_digest

        assert ctx.master is not None and ctx.master.provider_node is not None
        with ctx.master_ssh_slots:
            ctx.access.arm_autosign(ctx.master.provider_node.id, node.fqdn, token_digest(token))
        facts[AUTOSIGN_ARMED] = True
    group = node.planned.group
    where = placement_of(ctx.spec, node.planned)
    request = LaunchRequest(  # tagged as the environment its site's cloud knows (provider.environment)
        environment=ctx.provider.environment, hostname=node.hostname, role=node.planned.role,
        image_id=image_id, size_id=ctx.spec.provider.size_id(node.planned.size),
        user_data=user_data_for(ctx, node, autosign=token, unarmed=bool(unarmed)), generation=generation,
        zone=where[1] if where and where[0] == "zone" else None,
        subnet=where[1] if where and where[0] == "subnet" else None,
        root_size_gb=root_size_gb(ctx.spec, group), extra_tags={**tags_for(ctx.spec, group), **ctx.options.node_tags},
        create_options=dict(group.extra) if group is not None else {},
        fallback_sizes=tuple(ctx.spec.provider.size_id(s) for s in group.fallback_sizes) if group else (),
        service_ports=service_ports(group),
    )
    node.client_token = request.client_token
    with ctx.launch_slots:
        created = ctx.provider.launch(request)
    if ctx.provider.needs_replacing(created):
        # Its launch was killed before the cloud started booting it: replace it rather than wait
        # for a boot that will not come.
        ctx.provider.destroy_node(created)
        raise Relaunch(f"{created.id} was left half-made by an interrupted launch: destroyed, launching anew")
    _adopt(ctx, node, created, request.client_token)
    size = ctx.provider.size_of(created)
    if size is not None:
        facts[SIZE_FACT] = size
    fallback = f"; size {size} ({request.size_id} had no capacity)" if size and size != request.size_id else ""
    detail = (f"{created.id} at {node.address or 'no address yet'}" + fallback + cloud_detail + unarmed
              + _provision(ctx, node))
    if node.planned.is_master and ctx.master_state is not None:
        facts[MASTER_STATE_OFFERED] = ctx.master_state.record.id  # boot.sh puts it back; the boot step reports it
    return StepResult(detail, facts)


def _master_reachable(ctx: RunContext) -> bool:
    """Is the master up, so that a token can be armed on it over SSH? Once its services (DNS and
    broker) answered, the same on every cloud; its Puppet server need not be up yet."""
    return ctx.master is not None and ctx.journal.node(ctx.master.hostname).is_done(Step.SERVICES)


def _provision(ctx: RunContext, node: NodeRuntime) -> str:
    """What the provider gives the node at once (a real cloud: the master's address, volumes), part
    of launch so that `up --until launch` leaves the networking and storage wired."""
    group = node.planned.group
    done = ctx.provider.provision(node.provider_node, node.hostname, is_master=node.planned.is_master,
                                  volumes=wanted_with_backups(ctx, node, _volumes_wanted(node)),
                                  elastic_address=group is not None and group.elastic_address)
    return "".join(f"; {part}" for part in done)


def _volumes_wanted(node: NodeRuntime) -> list[VolumeWanted]:
    return volumes_wanted(node.planned.group)


def _uses_autosign_tokens(ctx: RunContext) -> bool:
    return ctx.spec.master.puppet.mode == "server" and ctx.spec.master.puppet.autosign == "token"


def _adopt(ctx: RunContext, node: NodeRuntime, provider_node: Node, token: str | None) -> None:
    node.provider_node = provider_node
    addresses = ctx.provider.addresses(provider_node)
    node.address, node.public_address = addresses.private, addresses.public
    node.client_token = token or node.client_token


def reacquire(ctx: RunContext, node: NodeRuntime) -> bool:
    """On resume: find the launched node again by its tags. False when the cloud has lost it."""
    found = ctx.provider.find(node.hostname)
    if found is None:
        return False
    _adopt(ctx, node, found, ctx.journal.node(node.hostname).client_token)
    return True


def destroy_node(ctx: RunContext, node: NodeRuntime) -> None:
    """Destroy the node if the cloud still has it. The runner forgets it in the journal."""
    found = ctx.provider.find(node.hostname)
    if found is not None:
        ctx.provider.destroy_node(found)
    node.forget()


def boot(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """Wait until the node's boot (its boot script and user-data) has finished, as its provider
    tells it; fail at once when the boot failed."""
    deadline = ctx.clock.monotonic() + ctx.options.boot_timeout
    delay = 0.2
    while True:
        current = ctx.provider.find(node.hostname)
        if current is None:
            raise NodeLost("the node disappeared while booting: launching it anew")
        node.provider_node = current
        progress = ctx.provider.boot_finished(current)
        if progress.failed:
            raise StepFailed(f"{node.hostname}: failed to boot", hint=_console_hint(current), log_tail=progress.detail)
        if progress.finished:
            if not node.address:
                _adopt(ctx, node, current, node.client_token)
            return _booted(ctx, node)
        if ctx.clock.monotonic() > deadline:
            raise WaitTimeoutError(f"{node.hostname}: boot not finished after {ctx.options.boot_timeout:.0f} s "
                                   f"({progress.detail})", hint=_console_hint(current))
        ctx.clock.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def _booted(ctx: RunContext, node: NodeRuntime) -> StepResult:
    """A master launched with its earlier state (master.restore) booted only once boot.sh had put it
    back, checked by digest, before puppetserver started: say which state, from when (the RPO)."""
    offered = ctx.journal.node(node.hostname).steps.get(Step.LAUNCH)
    choice = ctx.master_state
    if (not node.planned.is_master or choice is None or offered is None
            or offered.facts.get(MASTER_STATE_OFFERED) != choice.record.id):
        return StepResult(f"booted at {node.address}")
    now = ctx.clock.time()
    return StepResult(f"booted at {node.address}; {choice.detail(now)}", dict(choice.facts(now)))


def boot_failed_unrecorded(ctx: RunContext, node: NodeRuntime) -> bool:
    """At the start of a run: the node's boot failed while no run could record it (the run that
    launched it stopped, its state disk full): the cloud says failed, the journal has no boot."""
    record = ctx.journal.node(node.hostname)
    if not record.provider_id or record.is_done(Step.BOOT) or Step.BOOT not in node.planned.steps:
        return False
    found = ctx.provider.find(node.hostname)
    return found is not None and ctx.provider.boot_finished(found).failed


def _console_hint(provider_node: object) -> str:
    console = getattr(provider_node, "extra", {}).get("console_log")
    return f"see its console log {console}" if console else "see the node's console output"


# ---- the master -------------------------------------------------------------------------------


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
    wanted = wanted_with_backups(ctx, node, _volumes_wanted(node))
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
