"""The backup agent (runs on a node, as root): the spec's snapshot hooks of a volume, and the
content manifest of a volume (every file's path, size and SHA-256) that proves a restore.

A request names a volume, never a path or a command: both come from the agent's configuration,
written at launch from the spec. A manifest never follows a symbolic link, never opens anything
but a regular file, stays on the volume's own file system, and stops at the configured limits of
files, bytes and seconds, so a request cannot make the agent read the rest of the node or run forever.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drbootstrap.agent.registry import ActionFailed, Input, RpcAgent, action
from drbootstrap.messaging.envelope import Request, StatusCode

if TYPE_CHECKING:
    from drbootstrap.agent.config import BackupConfig, BackupVolumeConfig

_VOLUME = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_CHUNK = 1024 * 1024
OUTPUT_TAIL = 2000  # characters of a hook's output sent back


class ManifestTooLarge(Exception):
    """The volume holds more than the agent is configured to read for one manifest."""


@dataclass(frozen=True)
class Manifest:
    """What a volume holds: the digest of its sorted entries, and how many files and bytes."""

    digest: str
    files: int
    bytes: int
    skipped: int = 0  # mount points of other file systems below the volume's root, not entered


def compute_manifest(root: str, *, max_files: int, max_bytes: int, max_seconds: float) -> Manifest:
    """The manifest of the tree at `root`: one line per entry (type, relative path, size, SHA-256
    or link target), sorted, hashed. Raises ManifestTooLarge past a limit, OSError if root is unreadable."""
    deadline = time.monotonic() + max_seconds
    top = os.lstat(root)
    if not stat.S_ISDIR(top.st_mode):
        raise NotADirectoryError(f"{root} is not a directory")
    lines: list[str] = []
    files = total = skipped = 0
    for directory, dirs, names in os.walk(root, followlinks=False, onerror=_raise):
        dirs.sort()
        kept = []
        for name in dirs:
            info = os.lstat(os.path.join(directory, name))
            if stat.S_ISDIR(info.st_mode) and info.st_dev != top.st_dev:
                skipped += 1  # another file system mounted inside: not the volume's content
                continue
            if stat.S_ISDIR(info.st_mode):
                kept.append(name)
            names.append(name)  # a symlink to a directory is listed as a link, not walked
        dirs[:] = kept
        for name in sorted(set(names)):
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, root)
            info = os.lstat(path)
            files += 1
            if files > max_files:
                raise ManifestTooLarge(f"more than {max_files} entries")
            if time.monotonic() > deadline:
                raise ManifestTooLarge(f"not done within {max_seconds:.0f} s")
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
                if total > max_bytes:
                    raise ManifestTooLarge(f"more than {max_bytes} bytes")
                lines.append(f"F {relative!r} {info.st_size} {_file_digest(path, deadline, max_seconds)}")
            elif stat.S_ISLNK(info.st_mode):
                lines.append(f"L {relative!r} {os.readlink(path)!r}")
            elif stat.S_ISDIR(info.st_mode):
                lines.append(f"D {relative!r}")
            else:
                lines.append(f"O {relative!r} {stat.S_IFMT(info.st_mode)}")
    lines.sort()
    digest = hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()
    return Manifest(digest, files, total, skipped)


def _raise(error: OSError) -> None:
    raise error


def _file_digest(path: str, deadline: float, max_seconds: float) -> str:
    """SHA-256 of a regular file opened without following links (it may have been swapped for one)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ManifestTooLarge(f"{path} changed while it was read")
        digest = hashlib.sha256()
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            if time.monotonic() > deadline:
                raise ManifestTooLarge(f"not done within {max_seconds:.0f} s")
    return digest.hexdigest()


class BackupAgent(RpcAgent):
    name = "backup"
    description = "Snapshot hooks and content manifests of the volumes this node backs up (from the spec)."

    @action("Run VOLUME's pre_snapshot or post_snapshot hook as configured", slow=True,
            volume=Input("string", required=True, pattern=_VOLUME, max_length=63),
            hook=Input("string", required=True, choices=("pre_snapshot", "post_snapshot")))
    def hook(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        volume = self._volume(data["volume"])
        command = volume.pre_snapshot if data["hook"] == "pre_snapshot" else volume.post_snapshot
        if not command:
            return {"ran": False, "exitcode": 0, "output": ""}
        # DRB_VOLUME_PATH: where the volume is mounted here; DRB_ROOT as restore hooks and checks see it.
        env = {**os.environ, "DRB_VOLUME_PATH": volume.path, "DRB_ROOT": os.environ.get("FACTER_drb_root", "")}
        # Its own process group: a hook that times out is ended with everything it started.
        process = subprocess.Popen(["/bin/sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, errors="replace", env=env,
                                   start_new_session=True)
        try:
            output, _ = process.communicate(timeout=volume.hook_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise ActionFailed(StatusCode.ABORTED, f"{data['hook']} of {data['volume']} timed out after "
                                                   f"{volume.hook_timeout:.0f} s") from None
        output = output[-OUTPUT_TAIL:]
        if process.returncode != 0:
            raise ActionFailed(StatusCode.ABORTED, f"{data['hook']} of {data['volume']} exited {process.returncode}",
                               {"exitcode": process.returncode, "output": output})
        return {"ran": True, "exitcode": 0, "output": output}

    @action("The content manifest of VOLUME (its digest, files and bytes)", slow=True,
            volume=Input("string", required=True, pattern=_VOLUME, max_length=63))
    def manifest(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        config = self._config()
        volume = self._volume(data["volume"])
        try:
            found = compute_manifest(volume.path, max_files=config.max_files, max_bytes=config.max_bytes,
                                     max_seconds=config.max_seconds)
        except ManifestTooLarge as error:
            raise ActionFailed(StatusCode.ABORTED, f"manifest of {data['volume']} refused: {error}") from None
        except OSError as error:
            raise ActionFailed(StatusCode.UNKNOWN_ERROR, f"manifest of {data['volume']}: cannot read "
                                                         f"{volume.path}: {error.strerror or error}") from None
        return {"digest": found.digest, "files": found.files, "bytes": found.bytes, "skipped": found.skipped}

    def _config(self) -> BackupConfig:
        config = self.context.config.backup
        if config is None:
            raise ActionFailed(StatusCode.INVALID_DATA, "this node backs up no volume (no backup settings)")
        return config

    def _volume(self, name: str) -> BackupVolumeConfig:
        volume = self._config().volumes.get(name)
        if volume is None:
            raise ActionFailed(StatusCode.INVALID_DATA, f"this node backs up no volume {name!r}")
        return volume
