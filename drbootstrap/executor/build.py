"""Assemble a run from a spec: the driver, pacing, broker client, node access, journal and PSK."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from drbootstrap.executor.backends import (
    LocalNodeAccess,
    RpcFleet,
    master_probe,
)
from drbootstrap.executor.context import NodeAccess, RunContext, UpOptions
from drbootstrap.executor.events import RETRY, Event
from drbootstrap.executor.secrets import (
    load_or_create_operator_key,
    load_or_create_psk,
)
from drbootstrap.executor.ssh_access import SshNodeAccess
from drbootstrap.journal import Journal
from drbootstrap.paths import EnvironmentPaths, project_root, write_private_file
from drbootstrap.plan import Plan
from drbootstrap.providers.cloud import (
    Pacing,
    ProviderSettings,
    bucket_for,
    build_driver,
    retry_policy_for,
)
from drbootstrap.providers.throttle import RetryEvent
from drbootstrap.spec.models import EnvironmentSpec


def driver_factory_for(spec: EnvironmentSpec, state_dir: Path) -> Callable[[], Any]:
    """A factory of NodeDrivers for the spec's provider (one per thread)."""
    if spec.provider.is_local:
        from drbootstrap.providers import get_node_driver

        return lambda: get_node_driver("local", state_dir=state_dir, network=str(spec.provider.network))
    settings = ProviderSettings.from_block(spec.provider)
    return lambda: build_driver(settings)


def pacing_for(spec: EnvironmentSpec, emit: Callable[[Event], None]) -> Pacing:
    def on_retry(event: RetryEvent) -> None:
        emit(Event(node="", step="cloud", state=RETRY,
                   detail=f"{event.operation}: {event.kind.value}, attempt {event.attempt}/{event.max_attempts}, "
                   f"retrying in {event.delay:.1f} s"))

    settings = ProviderSettings.from_block(spec.provider)
    return Pacing(bucket=bucket_for(settings), policy=retry_policy_for(settings), on_retry=on_retry)


def client_key_file(spec: EnvironmentSpec, state_dir: Path, psk: str) -> Path:
    """The PSK as a 0600 key file for the RPC client (the spec's value may come from the environment)."""
    path = EnvironmentPaths(state_dir, spec.environment).client_key
    if not path.exists() or path.read_text().strip() != psk:
        write_private_file(path, psk + "\n")
    return path


def build_context(spec: EnvironmentSpec, plan: Plan, paths: EnvironmentPaths, *, options: UpOptions | None = None,
                  emit: Callable[[Event], None] = lambda e: None) -> RunContext:
    """Everything `up` needs for this spec and its plan, with the real cloud, broker and node access."""
    state_dir = paths.state_dir
    psk = load_or_create_psk(spec, state_dir)
    key_file = client_key_file(spec, state_dir, psk)
    journal = Journal.at(paths, str(spec.source_path or ""))
    factory = driver_factory_for(spec, state_dir)
    recipes = project_root() / "recipes"
    nodes_dir = paths.nodes
    pacing = pacing_for(spec, emit)
    if spec.provider.is_local:
        # The master is reached over SSH as on a real cloud, with the operator key the state dir holds.
        key_path = paths.ssh_private_key
        access: NodeAccess = LocalNodeAccess(factory, nodes_dir, project_root() / "images", recipes,
                                             private_key_path=key_path,
                                             operator_public_key=load_or_create_operator_key(key_path),
                                             master_hostname=spec.master.hostname, pacing=pacing)
        probe = master_probe(nodes_dir / spec.master.hostname / "var")
    else:
        # A real cloud: nodes over SSH with the environment's key, the master's services probed
        # from here (their logs are on the master, not readable from this host).
        access = SshNodeAccess(factory, paths.ssh_private_key, pacing)
        probe = master_probe(None)
    broker_port = spec.master.broker.port

    def fleet_factory(address: str) -> RpcFleet:
        return RpcFleet(f"stomp://{address}:{broker_port}", key_file)

    return RunContext(spec=spec, plan=plan, journal=journal, driver_factory=factory, fleet_factory=fleet_factory,
                      access=access, probe_services=probe, psk=psk, pacing=pacing, max_parallel=spec.provider.max_parallel,
                      options=options or UpOptions(), emit=emit, paths=paths, recipes_dir=recipes)
