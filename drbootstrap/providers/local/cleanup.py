"""Remove everything the local cloud made for one state dir, even after a crash. Idempotent."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from drbootstrap.errors import ProviderError
from drbootstrap.providers.local import netns, runtime
from drbootstrap.providers.local.storage import forget_attachment

if TYPE_CHECKING:
    from drbootstrap.providers.local.driver import LocalNodeDriver


def cleanup_everything(driver: LocalNodeDriver) -> list[str]:
    """Processes, namespace files, namespaces, links, the anchor, created mount points, state.

    Works from names (the per-state-dir prefix) as well as from the state file, so pieces a
    crashed launch left behind are found too. Returns what was removed, for the CLI to show.
    """
    netns.check_prerequisites()
    removed: list[str] = []
    plumbing, store = driver.plumbing, driver.store
    if not store.root.exists():  # no state on disk: still sweep by name (a crashed run)
        _stop_namespace_processes(plumbing, removed)
        _remove_links(plumbing, removed)
        return removed
    with store.locked():
        state = store.read()
        _stop_namespace_processes(plumbing, removed)
        ns_dir = store.root / "ns"
        for mount in own_mounts(store.root):
            netns.run(["umount", "-l", mount], check=False)
            removed.append(f"mount {mount}")
        if ns_dir.is_dir() and runtime.is_mount_point(ns_dir):
            netns.run(["umount", "-l", str(ns_dir)], check=False)
        _remove_links(plumbing, removed)
        if state.anchor_pid and _is_anchor(state.anchor_pid):
            os.kill(state.anchor_pid, signal.SIGKILL)
            removed.append(f"anchor process {state.anchor_pid}")
        for volume in state.volumes.values():
            forget_attachment(volume)
    if store.root.exists():
        shutil.rmtree(store.root, ignore_errors=True)
        removed.append(f"state {store.root}")
    return removed


def _stop_namespace_processes(plumbing: netns.Plumbing, removed: list[str]) -> None:
    """Stop every node's processes; one unkillable process must not stop the rest of cleanup."""
    stuck = []
    for name in plumbing.own_namespaces():
        try:
            runtime.stop_processes(netns.namespace_inode(netns.NETNS_DIR / name))
        except ProviderError as error:
            stuck.append(str(error))
        removed.append(f"namespace {name}")
    removed += [f"NOT removed: {problem}" for problem in stuck]


def _remove_links(plumbing: netns.Plumbing, removed: list[str]) -> None:
    """Namespaces (which takes their veth ends) and the host's veths and bridges."""
    removed += [f"link {link}" for link in plumbing.own_links()]
    plumbing.remove_everything()


def own_mounts(root: Path) -> list[str]:
    """Mount points under the local cloud's state directory, deepest first."""
    prefix = str(root.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _is_anchor(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\0infinity\0"
    except OSError:
        return False
