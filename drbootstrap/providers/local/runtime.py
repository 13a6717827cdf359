"""A node's life on this machine: its files, its UTS + mount namespaces, its boot, its processes.

Boot = one `setsid -f nsenter --net=NS unshare --uts=F --mount=F bash -c BOOT_SCRIPT`: the shell
builds the node's private mounts, sets the hostname from the node's /etc/hostname, then runs the
image's boot.sh and the user-data with its output in the console log. No Python per node.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from drbootstrap.errors import ProviderError
from drbootstrap.providers.local.netns import namespace_inode, run

CLOUD_DIR_IN_NODE = "/run/drb-cloud"
IMAGE_DIR_IN_NODE = "/run/drb-image"
PATH_IN_NODE = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STOP_GRACE_SECONDS = 2.0
# A node starts from a clean environment: the driver's own (cloud keys, say) never leaks in.
BOOT_ENVIRONMENT = {"PATH": PATH_IN_NODE, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}


@dataclass(frozen=True)
class NodePaths:
    """Where one node's files live on the host (the node sees `cloud/` at /run/drb-cloud)."""

    root: Path
    ns_dir: Path
    node_id: str

    @property
    def dir(self) -> Path:
        return self.root / "nodes" / self.node_id

    @property
    def cloud(self) -> Path:
        return self.dir / "cloud"

    @property
    def etc(self) -> Path:
        return self.dir / "etc"

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    @property
    def boot_pid(self) -> Path:
        return self.dir / "boot.pid"

    @property
    def boot_exit(self) -> Path:
        return self.dir / "boot.exit"

    @property
    def uts_file(self) -> Path:
        return self.ns_dir / f"{self.node_id}.uts"

    @property
    def mnt_file(self) -> Path:
        return self.ns_dir / f"{self.node_id}.mnt"


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


def ensure_private_ns_dir(ns_dir: Path) -> None:
    """unshare can only bind a mount-namespace file into a directory that is a private mount."""
    ns_dir.mkdir(parents=True, exist_ok=True)
    if not is_mount_point(ns_dir):
        run(["mount", "--bind", str(ns_dir), str(ns_dir)])
        run(["mount", "--make-private", str(ns_dir)])


def is_mount_point(path: Path) -> bool:
    """From the mount table: os.path.ismount misses a directory bind-mounted onto itself."""
    wanted = str(path.resolve())
    with open("/proc/self/mountinfo") as table:
        return any(line.split()[4].replace("\\040", " ") == wanted for line in table)


def release_namespace_files(paths: NodePaths) -> None:
    """Unmount the node's UTS/mount namespace files: with no process left, the namespaces end."""
    for path in (paths.uts_file, paths.mnt_file):
        if path.exists() and os.path.ismount(path):
            run(["umount", "-l", str(path)], check=False)


PRIVATE_TREES = (Path("/run"), Path("/tmp"))  # each node mounts a fresh tmpfs over these


def paths_hidden_by_private_trees(paths: list[Path]) -> list[Path]:
    """Of the host paths a node must keep seeing, those under /run or /tmp (outermost only).

    A checkout, state dir or virtual environment under /tmp would vanish behind the node's own
    /tmp; the boot shell binds these back at the same place.
    """
    hidden = sorted({p.resolve() for p in paths
                     if any(p.resolve().is_relative_to(tree) for tree in PRIVATE_TREES)})
    return [p for p in hidden if not any(p != q and p.is_relative_to(q) for q in hidden)]


def boot_script(paths: NodePaths, image_dir: Path, mounts: list[Mount], user_data: list[str],
                first_boot: bool, keep_visible: Sequence[Path] = ()) -> str:
    """The shell program that becomes the node's first process (see the module docstring).

    keep_visible: host paths under /run or /tmp (see paths_hidden_by_private_trees) that stay
    visible, read-write, at the same place inside the node.
    """
    q = shlex.quote
    # Open everything the node needs from the host before /run and /tmp are covered, then
    # bind from /proc/self/fd: works even when the state dir lives under /tmp. (bash, not sh:
    # dash cannot redirect file descriptors above 9.) --no-canonicalize: mount would otherwise
    # resolve /proc/self/fd/N to its path name, which under the new tmpfs is another directory.
    opens = [f"3<{q(str(paths.cloud))}", f"4<{q(str(image_dir))}"]
    binds = [f"bind_fd 3 {CLOUD_DIR_IN_NODE} ro || setup_failed {CLOUD_DIR_IN_NODE}",
             f"bind_fd 4 {IMAGE_DIR_IN_NODE} ro || setup_failed {IMAGE_DIR_IN_NODE}"]
    for fd, name in enumerate(("hosts", "resolv.conf", "hostname"), start=5):  # 5, 6, 7
        opens.append(f"{fd}<{q(str(paths.etc / name))}")
        binds.append(f"bind_etc {fd} /etc/{name} || setup_failed /etc/{name}")
    for fd, mount in enumerate(mounts, start=10):
        opens.append(f"{fd}<{q(str(mount.source))}")
        binds.append(f"{{ mkdir -p {q(mount.target)} && bind_fd {fd} {q(mount.target)} rw; }} "
                     f"|| setup_failed {q(mount.target)}")
    first_shared = 10 + len(mounts)
    for fd, shared in enumerate(keep_visible, start=first_shared):
        opens.append(f"{fd}<{q(str(shared))}")
        binds.insert(0, f"{{ mkdir -p {q(str(shared))} && bind_fd {fd} {q(str(shared))} rw; }} "
                        f"|| setup_failed {q(str(shared))}")
    closes = " ".join(f"{fd}<&-" for fd in [3, 4, 5, 6, 7]
                      + list(range(10, first_shared + len(keep_visible))))
    steps = "\n".join(f"[ $rc -eq 0 ] && {{ {cmd} 9>&-; rc=$?; }}" for cmd in user_data)
    return f"""set -u
exec {' '.join(opens)}
exec 9>{q(str(paths.boot_exit))} </dev/null
echo $$ >{q(str(paths.boot_pid))}
rc=0
setup_failed() {{ echo "drb-cloud: could not mount $1 in the node"; rc=1; }}
bind_fd() {{ mount --no-canonicalize --bind /proc/self/fd/$1 "$2" || return
  [ "$3" = rw ] || mount -o remount,bind,$3 "$2"; }}
bind_etc() {{ local target="$2"; [ -e "$target" ] || return 0
  # a symlinked /etc file points into the new /run: make its target there first
  if [ -L "$target" ]; then target=$(readlink -f "$target"); mkdir -p "${{target%/*}}"; : >"$target"; fi
  mount --no-canonicalize --bind /proc/self/fd/$1 "$target"; }}
# The copied mount table pins other namespaces (other nodes' netns and UTS files): drop them
# all with one umount (bash builtins only: this runs once per boot of every node).
points=()
while read -r line; do
  [[ $line == *" - nsfs "* ]] && {{ set -- $line; points+=("$5"); }}
done </proc/self/mountinfo
[ ${{#points[@]}} -eq 0 ] || umount -l "${{points[@]}}"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || setup_failed /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp || setup_failed /tmp
mount -t sysfs -o ro sysfs /sys 2>/dev/null
mkdir -p {CLOUD_DIR_IN_NODE} {IMAGE_DIR_IN_NODE} /run/lock
{chr(10).join(binds)}
name=""; read -r name <&7  # the node's own /etc/hostname, even where the host has none
[ -n "$name" ] && echo "$name" >/proc/sys/kernel/hostname; name=$(</proc/sys/kernel/hostname)
exec {closes}
export PATH={PATH_IN_NODE} DRB_CLOUD_DIR={CLOUD_DIR_IN_NODE} DRB_IMAGE_DIR={IMAGE_DIR_IN_NODE}
export DRB_CLOUD_METADATA={CLOUD_DIR_IN_NODE}/meta-data.json DRB_CLOUD_USERDATA={CLOUD_DIR_IN_NODE}/user-data
export DRB_CLOUD_INSTANCE_ID={q(paths.node_id)} DRB_CLOUD_FIRST_BOOT={1 if first_boot else 0}
cd /
echo "drb-cloud: booting $DRB_CLOUD_INSTANCE_ID as $name"
if [ $rc -eq 0 ] && [ -f {IMAGE_DIR_IN_NODE}/boot.sh ]; then sh {IMAGE_DIR_IN_NODE}/boot.sh 9>&-; rc=$?; fi
{steps}
echo "drb-cloud: boot finished with status $rc"
echo $rc >&9
"""


def launch(paths: NodePaths, netns_path: Path, script: str, *, wait_seconds: float = 10.0) -> int:
    """Start the boot shell in fresh UTS/mount namespaces inside the node's netns; return its pid."""
    release_namespace_files(paths)
    for path in (paths.uts_file, paths.mnt_file):
        path.touch()
    for path in (paths.boot_pid, paths.boot_exit):
        path.unlink(missing_ok=True)
    with open(paths.console_log, "ab") as console:
        result = subprocess.run(
            ["setsid", "-f", "nsenter", f"--net={netns_path}", "unshare", f"--uts={paths.uts_file}",
             f"--mount={paths.mnt_file}", "--propagation", "private", "bash", "-c", script],
            stdin=subprocess.DEVNULL, stdout=console, stderr=console, env=BOOT_ENVIRONMENT,
        )
    if result.returncode != 0:
        paths.boot_exit.write_text("255\n")
        raise ProviderError(f"local cloud: could not start node {paths.node_id}: {console_tail(paths)}")
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        try:
            return int(paths.boot_pid.read_text())
        except (FileNotFoundError, ValueError):
            time.sleep(0.005)
    paths.boot_exit.write_text("255\n")  # the node shows as ERROR from now on
    raise ProviderError(
        f"local cloud: node {paths.node_id} did not start within {wait_seconds:.0f} s: "
        f"{console_tail(paths)}",
        hint=f"see {paths.console_log}",
    )


def boot_outcome(paths: NodePaths, netns_inode: int | None) -> tuple[str, int | None]:
    """('booting' | 'done' | 'stopped', exit status) from the pid and exit files the shell writes."""
    try:
        text = paths.boot_exit.read_text().strip()
    except FileNotFoundError:
        text = ""
    if text:
        return "done", int(text)
    try:
        pid = int(paths.boot_pid.read_text())
    except (FileNotFoundError, ValueError):
        return ("booting" if not paths.boot_exit.exists() else "stopped"), None
    alive = netns_inode is not None and namespace_inode(Path(f"/proc/{pid}/ns/net")) == netns_inode
    return ("booting" if alive else "stopped"), None


def console_tail(paths: NodePaths, lines: int = 15) -> str:
    try:
        tail = paths.console_log.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return "(no console output)"
    return " | ".join(tail) or "(no console output)"


def pids_in_netns(netns_inode: int) -> list[int]:
    """Every process whose network namespace is the node's, daemons that left the group included."""
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != me:
            if namespace_inode(Path(entry.path, "ns/net")) == netns_inode:
                found.append(int(entry.name))
    return found


def stop_processes(netns_inode: int | None, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every process of the node, SIGKILL what is left after `grace`, wait until gone."""
    if netns_inode is None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        pids = pids_in_netns(netns_inode)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while pids_in_netns(netns_inode) and time.monotonic() < deadline:
            time.sleep(0.02)
    if pids_in_netns(netns_inode):
        raise ProviderError(f"local cloud: processes {pids_in_netns(netns_inode)} survived SIGKILL")


@contextlib.contextmanager
def node_lock(cloud_root: Path, node_id: str, *, forget: bool = False) -> Iterator[None]:
    """One of reboot, stop and destroy at a time per node, across processes (the in-node reboot
    helper runs apart from the command that destroys). FORGET: remove the lock file afterwards (the
    node is gone; a waiter then finds no node)."""
    locks = cloud_root / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{node_id}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if forget:
                path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def reboot_command_script(node_id: str, state_dir: Path, anchor_pid_file: str) -> str:
    """/run/drb-cloud/reboot: leave the node through the host anchor's namespaces, then reboot it."""
    package_parent = Path(__file__).resolve().parents[3]
    command = [sys.executable, "-m", "drbootstrap.providers.local.reboot", node_id,
               "--state-dir", str(state_dir)]
    return f"""#!/bin/sh
# Reboot this node (returns at once; the node's processes are stopped a moment later).
anchor=$(cat {anchor_pid_file})
cd / && exec nsenter -t "$anchor" -n -m -u -- env PYTHONPATH={shlex.quote(str(package_parent))} \\
  setsid -f {shlex.join(command)} </dev/null >/dev/null 2>&1
"""


def start_anchor() -> int:
    """A sleeping host process whose namespaces the in-node reboot command enters (pid 1's may
    be unreadable, e.g. in a sandbox): orphaned at once (never our zombie), killed by cleanup."""
    output = subprocess.run(
        ["sh", "-c", "sleep infinity </dev/null >/dev/null 2>&1 & echo $!"],
        capture_output=True, text=True, start_new_session=True, check=True,
    ).stdout
    return int(output.strip())
