"""Assemble a run from a spec: the provider, broker client, node access, journal and the keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drbootstrap.executor.backends import (
    LocalNodeAccess,
    RpcFleet,
    master_probe,
)
from drbootstrap.executor.context import NodeAccess, RunContext, UpOptions
from drbootstrap.executor.events import RETRY, Event
from drbootstrap.executor.secrets import ED25519, load_or_create_broker_ca, load_or_create_psk, signing_scheme
from drbootstrap.executor.ssh_access import SshNodeAccess
from drbootstrap.images.from_spec import broker_uses_tls, controller_fqdn
from drbootstrap.journal import Journal
from drbootstrap.messaging.keys import EnvironmentKeys, provision_environment_keys
from drbootstrap.paths import EnvironmentPaths, project_root, write_private_file
from drbootstrap.plan import Plan
from drbootstrap.providers.base import Provider
from drbootstrap.providers.registry import create_provider
from drbootstrap.providers.settings import ProviderSettings
from drbootstrap.providers.throttle import RetryEvent
from drbootstrap.providers.values import EnvironmentScope
from drbootstrap.spec.models import EnvironmentSpec


def provider_for(spec: EnvironmentSpec, paths: EnvironmentPaths, emit: Callable[[Event], None] = lambda e: None,
                 *, started: float | None = None) -> Provider:
    """The spec's provider for its environment; its retries are emitted as events timed from `started`."""
    started = time.monotonic() if started is None else started

    def on_retry(event: RetryEvent) -> None:
        emit(Event(node="", step="cloud", state=RETRY, elapsed=round(time.monotonic() - started, 3),
                   at=time.time(),
                   detail=f"{event.operation}: {event.kind.value}, attempt {event.attempt}/{event.max_attempts}, "
                   f"retrying in {event.delay:.1f} s"))

    # paths.cloud_environment: a site other than the primary is its own environment to its cloud;
    # its backups are still the environment's own (tagged with its name), and the site owns them.
    scope = EnvironmentScope(paths.cloud_environment, paths.state_dir, paths.ssh_private_key,
                             backups_of=paths.environment)
    return create_provider(ProviderSettings.from_block(spec.provider, spec.tags), scope, on_retry=on_retry)


def client_key_file(spec: EnvironmentSpec, state_dir: Path, psk: str) -> Path:
    """The PSK as a 0600 key file for the RPC client (the spec's value may come from the environment)."""
    path = EnvironmentPaths(state_dir, spec.environment).client_key
    if not path.exists() or path.read_text().strip() != psk:
        write_private_file(path, psk + "\n")
    return path


@dataclass(frozen=True)
class ClientSigning:
    """How the controller's RPC client signs and whom it trusts: the operator's ed25519 key and the
    nodes' public keys (`keys` set), or the shared PSK's key file (`trusted_keys_dir` None)."""

    key_file: Path
    trusted_keys_dir: Path | None
    keys: EnvironmentKeys | None


def client_signing(scheme: str, spec: EnvironmentSpec, paths: EnvironmentPaths, psk: str,
                   plan: Plan | None = None) -> ClientSigning:
    """The client's keys under `scheme` (signing_scheme's answer, asked before the PSK is first made:
    an environment without keys signs with HMAC when it already has a PSK), made once for new nodes."""
    if scheme == ED25519:
        hostnames = [n.hostname for n in plan.nodes()] if plan is not None else \
            [spec.master.hostname, *spec.worker_hostnames()]
        keys = provision_environment_keys(paths.keys, hostnames)
        return ClientSigning(keys.operator_key, keys.client_trusted_dir, keys)
    return ClientSigning(client_key_file(spec, paths.state_dir, psk), None, None)


def connect_fleet(spec: EnvironmentSpec, paths: EnvironmentPaths, address: str, signing: ClientSigning, *,
                  connect_timeout: float = 30.0) -> RpcFleet:
    """The controller's RPC client on the master's broker: stomp+ssl when the spec uses TLS, checking
    the broker's certificate chains to the environment's CA and names the master (ADDRESS may be a
    cloud's public address, which the master's certificate cannot name), else plain STOMP."""
    port, kind = spec.master.broker.port, spec.master.broker.kind
    if broker_uses_tls(spec):
        return RpcFleet(f"stomp+ssl://{address}:{port}", signing.key_file, trusted_keys_dir=signing.trusted_keys_dir,
                        tls_ca=paths.broker_ca_chain, tls_server_name=controller_fqdn(spec),
                        connect_timeout=connect_timeout, broker_kind=kind)
    return RpcFleet(f"stomp://{address}:{port}", signing.key_file, trusted_keys_dir=signing.trusted_keys_dir,
                    connect_timeout=connect_timeout, broker_kind=kind)


def build_context(spec: EnvironmentSpec, plan: Plan, paths: EnvironmentPaths, *, options: UpOptions | None = None,
                  emit: Callable[[Event], None] = lambda e: None) -> RunContext:
    """Everything `up` needs for this spec and its plan, with the real cloud, broker and node access."""
    state_dir = paths.state_dir
    scheme = signing_scheme(spec, paths)  # before the PSK is made: an existing PSK means HMAC
    psk = load_or_create_psk(spec, state_dir)
    signing = client_signing(scheme, spec, paths, psk, plan)
    if broker_uses_tls(spec):
        load_or_create_broker_ca(paths, spec.environment)  # once, before nodes launch side by side
    journal = Journal.at(paths, str(spec.source_path or ""))
    recipes = project_root() / "recipes"
    nodes_dir = paths.nodes
    provider = provider_for(spec, paths, emit)
    if provider.nodes_share_this_host:
        # A node shares this host's filesystem: its dirs live in the state dir, its commands go in
        # through nsenter; the master is reached over SSH as on a real cloud, with the operator key.
        access: NodeAccess = LocalNodeAccess(provider, nodes_dir, project_root() / "images", recipes,
                                             master_hostname=spec.master.hostname)
        probe = master_probe(nodes_dir / spec.master.hostname / "var")
    else:
        # A real cloud: nodes over SSH with the environment's key, the master's services probed
        # from here (their logs are on the master, not readable from this host).
        access = SshNodeAccess(provider)
        probe = master_probe(None)
    def fleet_factory(address: str) -> RpcFleet:
        return connect_fleet(spec, paths, address, signing)

    return RunContext(spec=spec, plan=plan, journal=journal, provider=provider, fleet_factory=fleet_factory,
                      access=access, probe_services=probe, psk=psk, keys=signing.keys,
                      max_parallel=provider.max_parallel,
                      options=options or UpOptions(), emit=emit, paths=paths, recipes_dir=recipes)
