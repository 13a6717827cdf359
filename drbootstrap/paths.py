"""Where drbootstrap keeps state on this machine: one place, overridable by DRB_STATE_DIR."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir() -> Path:
    """The state directory: $DRB_STATE_DIR, else /var/lib/drbootstrap as root, else ~/.local/state."""
    configured = os.environ.get("DRB_STATE_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/drbootstrap")
    return Path.home() / ".local" / "state" / "drbootstrap"


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
