"""Steady state, as the reliability guide asks before a system is declared back: reboot every node
through its agent (the master first, as the recipe builds it: a worker's boot needs the master's
DNS), wait until each agent answers from a new process and the master's services answer, let each
worker converge as its Puppet agent does when it starts at boot (one run), and run every check again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drbootstrap.errors import DrbError
from drbootstrap.executor.checks import run_checks
from drbootstrap.executor.context import Fleet, NodeRuntime, RunContext
from drbootstrap.plan import PlannedNode

REBOOT_DELAY = 1.0  # the agent replies first, then reboots after this


@dataclass
class SteadyState:
    ok: bool
    seconds: float
    rebooted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per node that did not come back checked
    detail: str = ""


def reboot_and_recheck(ctx: RunContext, *, timeout: float = 900.0) -> SteadyState:
    """Reboot the master, wait until its agent and services are back, then reboot every worker (a
    worker's boot asks the master's DNS for its name), wait for them, converge them and run the
    checks again. Never raises for a node: its problem is listed."""
    started = ctx.clock.monotonic()
    deadline = started + timeout
    master = _runtime(ctx, ctx.plan.master)
    if master.reachable_address is None:
        return SteadyState(False, 0.0, problems=["the master has no address: nothing to reboot"])
    address = master.reachable_address
    workers = [n for wave in ctx.plan.waves for n in wave]
    result = SteadyState(True, 0.0)
    _reboot(ctx, address, [ctx.plan.master], result, deadline)
    if not result.problems:
        try:
            remaining = max(1.0, deadline - ctx.clock.monotonic())
            ctx.probe_services(address, ctx.spec, ctx.clock.monotonic() + remaining)
            ctx.probe_services(address, ctx.spec, ctx.clock.monotonic() + remaining, puppet_ca=True)
        except DrbError as error:
            result.problems.append(f"{ctx.plan.master.hostname}: services after the reboot: {error.message}")
    if not result.problems:
        _reboot(ctx, address, workers, result, deadline)
    if not result.problems:
        result.problems += _converge_and_check(ctx, address, workers)
    result.ok = not result.problems
    result.seconds = round(ctx.clock.monotonic() - started, 3)
    result.detail = (f"{len(result.rebooted)} node(s) rebooted, back and checked" if result.ok
                     else "; ".join(result.problems))
    return result


def _reboot(ctx: RunContext, address: str, nodes: list[PlannedNode], result: SteadyState, deadline: float) -> None:
    """Reboot NODES through their agents and wait until each answers from a new process."""
    fleet = ctx.fleet_factory(address)
    asked = []
    try:
        before = {n.fqdn: _agent_process(fleet, n.fqdn) for n in nodes}
        for planned in nodes:
            try:
                fleet.call(planned.fqdn, "reboot", "reboot", {"delay": REBOOT_DELAY}, ctx.options.rpc_timeout)
                asked.append(planned)
            except DrbError as error:
                result.problems.append(f"{planned.hostname}: reboot refused: {error.message}")
    finally:
        _close(fleet)
    ctx.clock.sleep(REBOOT_DELAY + 1.0)
    back = _wait_for_new_agents(ctx, address, {n.fqdn: before[n.fqdn] for n in asked}, deadline)
    result.rebooted += [n.hostname for n in asked]
    result.problems += [f"{n.hostname}: its agent did not come back after the reboot" for n in asked
                        if n.fqdn not in back]


def _converge_and_check(ctx: RunContext, address: str, workers: list[PlannedNode]) -> list[str]:
    problems = []
    fleet = ctx.fleet_factory(address)
    try:
        for planned in workers:
            try:  # what a Puppet agent service does when it starts at boot
                fleet.call(planned.fqdn, "puppet", "runonce", {"force": True}, ctx.options.puppet_timeout)
            except DrbError as error:
                problems.append(f"{planned.hostname}: Puppet after the reboot: {error.message}")
                continue
            try:
                run_checks(ctx, _runtime(ctx, planned))
            except DrbError as error:
                problems.append(f"{planned.hostname}: after the reboot: {error.message}")
    finally:
        _close(fleet)
    return problems


def _wait_for_new_agents(ctx: RunContext, address: str, before: dict[str, tuple[int, int] | None],
                         deadline: float) -> set[str]:
    """The identities whose agent answers from another process than before the reboot."""
    back: set[str] = set()
    while ctx.clock.monotonic() < deadline and set(before) - back:
        try:
            fleet = ctx.fleet_factory(address)
        except DrbError:  # the master's broker is still starting
            ctx.clock.sleep(2.0)
            continue
        try:
            for identity in sorted(set(before) - back):
                now = _agent_process(fleet, identity)
                if now is not None and now != before[identity]:
                    back.add(identity)
        finally:
            _close(fleet)
        if set(before) - back:
            ctx.clock.sleep(2.0)
    return back


def _agent_process(fleet: Fleet, identity: str) -> tuple[int, int] | None:
    """(pid, start) of the agent answering as IDENTITY; None when it does not answer."""
    try:
        data = fleet.call(identity, "rpcutil", "inventory", {}, 5.0)
    except DrbError:
        return None
    return int(data.get("pid") or 0), int(data.get("started") or 0)


def _runtime(ctx: RunContext, planned: PlannedNode) -> NodeRuntime:
    """The node as the checks need it: its cloud node and addresses, from the journal and the cloud."""
    if planned.is_master and ctx.master is not None and ctx.master.reachable_address:
        return ctx.master
    node = NodeRuntime(planned)
    record = ctx.journal.data.nodes.get(planned.hostname)
    node.address = record.address if record else None
    found = ctx.provider.find(planned.hostname)
    if found is not None:
        addresses = ctx.provider.addresses(found)
        node.provider_node, node.address, node.public_address = found, addresses.private, addresses.public
    return node


def _close(fleet: Fleet) -> None:
    try:
        fleet.close()
    except Exception:  # noqa: BLE001, S110 - a connection to a rebooting broker may already be gone
        pass
