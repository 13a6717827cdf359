"""The first two steps of one node's recovery: launch (or adopt what an interrupted run launched)
and boot (its user-data finished), and destroying a node the run must launch anew."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drbootstrap.errors import WaitTimeoutError
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
from drbootstrap.executor.context import NodeRuntime, RunContext
from drbootstrap.executor.outcomes import (
    AUTOSIGN_ARMED,
    MASTER_STATE_OFFERED,
    NodeLost,
    Relaunch,
    StepFailed,
    StepResult,
)
from drbootstrap.executor.secrets import autosign_token
from drbootstrap.executor.userdata import user_data_for
from drbootstrap.executor.volume_restore import wanted_with_backups
from drbootstrap.journal import Fact
from drbootstrap.plan import Step
from drbootstrap.providers.nodes import LaunchRequest

if TYPE_CHECKING:
    from libcloud.compute.base import Node


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
                                  volumes=wanted_with_backups(ctx, node, volumes_wanted(node.planned.group)),
                                  elastic_address=group is not None and group.elastic_address)
    return "".join(f"; {part}" for part in done)


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
