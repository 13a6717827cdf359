"""Where drbootstrap keeps state on this machine: one place, overridable by DRB_STATE_DIR.

The layout of the state directory is decided here and nowhere else:

    <state_dir>/environments/<environment>/   EnvironmentPaths: journal, lock, keys, nodes/, reports
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


@dataclass(frozen=True)
class EnvironmentPaths:
    """Every file and directory drbootstrap keeps for one environment, under one directory."""

    state_dir: Path
    environment: str

    @property
    def root(self) -> Path:
        return self.state_dir / "environments" / self.environment

    @property
    def journal(self) -> Path:
        """What has been done (journal.py): read by `up`, `status`, `down`."""
        return self.root / "journal.json"

    @property
    def lock(self) -> Path:
        """Held (flock) by the one command changing the environment; names its holder."""
        return self.root / "lock"

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
    def broker_certificate(self) -> Path:
        """The master's broker certificate (stomp+ssl), pinned over SSH: what the client and workers trust."""
        return self.root / "broker-cert.pem"

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
