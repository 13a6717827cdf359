"""Where drbootstrap keeps state on this machine: one place, overridable by DRB_STATE_DIR.

The layout of the state directory is decided here and nowhere else:

    <state_dir>/environments/<environment>/   EnvironmentPaths: journal, lock, keys, nodes/, reports
        failover.json                         which site is active, and the failover in progress
        sites/<site>/                         the same files for the environment at another site
                                              (a drill's environment also holds drill-lease.json)
    <state_dir>/drill-history/<environment>/  each past drill of <environment>: its record and reports
    <state_dir>/local-cloud/                  the embedded local cloud's own state (local_cloud_dir)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_state_dir() -> Path:
    """The state directory: $DRB_STATE_DIR, else /var/lib/drbootstrap as root, else ~/.local/state."""
    configured = os.environ.get("DRB_STATE_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/drbootstrap")
    return Path.home() / ".local" / "state" / "drbootstrap"


def local_cloud_dir(state_dir: Path) -> Path:
    """The embedded local cloud's state (nodes, volumes, snapshots), shared by every environment."""
    return state_dir / "local-cloud"


PRIMARY_SITE = "primary"  # the site of the spec's main `provider:` block


@dataclass(frozen=True)
class EnvironmentPaths:
    """Every file and directory drbootstrap keeps for one environment at one site, under one directory.

    The primary site's files are the environment's own directory; another site's (`failover`)
    have the same layout under its `sites/<site>/`, so each site has its own journal, lock, keys
    and nodes while the environment's failover journal stays in one place."""

    state_dir: Path
    environment: str
    site: str = PRIMARY_SITE

    @property
    def environment_root(self) -> Path:
        """The environment's directory (the primary site's files, the failover journal)."""
        return self.state_dir / "environments" / self.environment

    @property
    def root(self) -> Path:
        if self.site == PRIMARY_SITE:
            return self.environment_root
        return self.environment_root / "sites" / self.site

    @property
    def cloud_environment(self) -> str:
        """The environment's name as this site's cloud sees it (tags, volume names): the
        environment's own at the primary site, `<environment>.<site>` at another, so two sites on
        one cloud (the local cloud's two networks) never take each other's nodes or volumes."""
        return self.environment if self.site == PRIMARY_SITE else f"{self.environment}.{self.site}"

    def at_site(self, site: str) -> EnvironmentPaths:
        """The same environment's files at another site."""
        return EnvironmentPaths(self.state_dir, self.environment, site)

    @property
    def failover_journal(self) -> Path:
        """Which site is active and the failover in progress, phase by phase (one per environment)."""
        return self.environment_root / "failover.json"

    @property
    def failover_lock(self) -> Path:
        """Held by the one `failover` or `failback` of the environment (each `up` holds its site's lock)."""
        return self.environment_root / "failover.lock"

    @property
    def failover_report_json(self) -> Path:
        return self.environment_root / "failover-report.json"

    @property
    def failover_report_markdown(self) -> Path:
        return self.environment_root / "failover-report.md"

    @property
    def journal(self) -> Path:
        """What has been done (journal.py): read by `up`, `status`, `down`."""
        return self.root / "journal.json"

    @property
    def lock(self) -> Path:
        """Held (flock) by the one command changing the environment; names its holder."""
        return self.root / "lock"

    @property
    def remote_state(self) -> Path:
        """With remote (s3) state: the remote journal's ETag this copy builds on, when the remote
        missed some of its writes (the endpoint failed); a later run pushes them if nobody wrote since."""
        return self.root / "remote-state.json"

    @property
    def psk(self) -> Path:
        """The generated broker signing key (0600), when the spec gives none."""
        return self.root / "psk"

    @property
    def client_key(self) -> Path:
        """The signing key as the RPC client reads it (0600; the spec's value may come from the env)."""
        return self.root / "client.key"

    @property
    def keys(self) -> Path:
        """The per-client ed25519 keys (drbootstrap.messaging.keys): the operator's, one per node, and
        the nodes' public keys the client trusts. Its presence marks an environment that signs with them."""
        return self.root / "keys"

    @property
    def broker_cookie(self) -> Path:
        """The broker cluster's Erlang cookie (0600; `master.broker.replicas` above 1)."""
        return self.root / "broker-cookie"

    @property
    def broker_ca(self) -> Path:
        """The environment's broker CA certificate (stomp+ssl): what the client and every agent trust."""
        return self.root / "broker-ca.pem"

    @property
    def broker_ca_chain(self) -> Path:
        """The CA's and the master's issuing CA's certificates: what the controller checks the broker by
        (the chain and the master's name, wherever it dials it)."""
        return self.root / "broker-ca-chain.pem"

    @property
    def broker_ca_key(self) -> Path:
        """That CA's private key (0600): it never leaves this state directory."""
        return self.root / "broker-ca.key"

    @property
    def broker_issuer(self) -> Path:
        """The master's issuing CA certificate, signed by the broker CA."""
        return self.root / "broker-issuer.pem"

    @property
    def broker_issuer_key(self) -> Path:
        """Its private key (0600): in the master's user-data, with which it issues its broker's certificate."""
        return self.root / "broker-issuer.key"

    @property
    def ssh_private_key(self) -> Path:
        """The operator's SSH private key (0600): made here for the local cloud, or the private half of
        the key pair drbootstrap made on an EC2-family cloud."""
        return self.root / "ssh-key.pem"

    @property
    def nodes(self) -> Path:
        """Per-node files of the local cloud's nodes (their config, var and recipe roots)."""
        return self.root / "nodes"

    @property
    def watch_state(self) -> Path:
        """What `drbootstrap watch` saw and did (watch/state.py): silences, resurrections, a pause."""
        return self.root / "watch.json"

    @property
    def watch_resume(self) -> Path:
        """Written by `watch --resume`: the running watcher lifts its meltdown pause and removes it."""
        return self.root / "watch.resume"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_markdown(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def drill_lease(self) -> Path:
        """In a drill's own environment: which drill made it, who runs it and when it expires
        (drill/lease.py); what `drill --cleanup` reads to reap it after a crash."""
        return self.root / "drill-lease.json"

    @property
    def drill_history(self) -> Path:
        """The past drills of this (production) environment, one directory each: kept apart from
        the environment's own files, which a drill never writes."""
        return self.state_dir / "drill-history" / self.environment

    @property
    def local_cloud(self) -> Path:
        return local_cloud_dir(self.state_dir)


def project_root() -> Path:
    """The checkout or installed tree that holds images/, recipes/ and examples/.

    $DRB_HOME wins; otherwise the directory above the package (a source checkout or an
    editable install), which is where images/ and recipes/ live.
    """
    configured = os.environ.get("DRB_HOME")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent


def write_private_file(path: Path, data: bytes | str) -> None:
    """Write a file that holds a secret: created 0600 from the start, replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
