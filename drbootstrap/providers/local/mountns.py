"""Mount a host directory into a running node's mount namespace (a volume attach).

A plain bind from inside the node cannot reach a host path hidden by the node's private /tmp or
/run, so we clone the host tree (open_tree) here and move it into the node (move_mount) from a
forked child that has entered the node's mount namespace. Needs Linux >= 5.2.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from drbootstrap.errors import ProviderError
from drbootstrap.providers.local.netns import run

_SYS_OPEN_TREE = 428  # same number on every architecture (added after the syscall table merge)
_SYS_MOVE_MOUNT = 429
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_AT_RECURSIVE = 0x8000
_AT_FDCWD = -100
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_CLONE_NEWNS = 0x00020000

_libc = ctypes.CDLL(None, use_errno=True)


def attach_into_namespace(mnt_namespace_file: Path, source: Path, target: str) -> None:
    """Bind `source` (host path) at `target` inside the mount namespace pinned at the file."""
    tree = _libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, os.fsencode(source),
                         _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE)
    if tree < 0:
        raise ProviderError(f"local cloud: cannot clone {source} for mounting: "
                            f"{os.strerror(ctypes.get_errno())}")
    namespace = os.open(mnt_namespace_file, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = os.fork()
        if pid == 0:  # child: only syscalls, then _exit (we may be forked from a threaded process)
            code = 0
            try:
                if _libc.setns(namespace, _CLONE_NEWNS) != 0:
                    code = ctypes.get_errno() or 1
                else:
                    os.makedirs(target, exist_ok=True)
                    if _libc.syscall(_SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, os.fsencode(target),
                                     _MOVE_MOUNT_F_EMPTY_PATH) != 0:
                        code = ctypes.get_errno() or 1
            except BaseException:  # noqa: BLE001 - the child must never return into the parent's code
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(namespace)
        os.close(tree)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise ProviderError(f"local cloud: mounting {source} at {target} in the node failed: "
                            f"{os.strerror(code)}")


def detach_from_namespace(mnt_namespace_file: Path, target: str) -> None:
    """Unmount `target` inside the node (lazily, so open files in the node do not block it)."""
    run(["nsenter", f"--mount={mnt_namespace_file}", "umount", "-l", target], check=False)
