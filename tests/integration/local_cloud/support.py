"""Helpers for the local cloud's integration tests: subnets, leftovers, running things in nodes."""

from __future__ import annotations

import ipaddress
import random
import subprocess
import sys
from pathlib import Path

from drbootstrap.providers.local import LocalNodeDriver, netns, runtime
from drbootstrap.providers.local.cleanup import own_mounts

IMAGES = Path(__file__).resolve().parent / "images"


def free_network() -> str:
    """A /24 inside 10.213.0.0/16 .. 10.250.0.0/16 that no address on this machine overlaps."""
    taken = [ipaddress.ip_interface(cidr).network for _, cidr in netns.host_ipv4_addresses()]
    for _ in range(200):
        candidate = ipaddress.ip_network(f"10.{random.randint(213, 250)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(net) for net in taken):
            return str(candidate)
    raise RuntimeError("no free /24 found in 10.213-10.250")


TAKEN_AT = "taken_at"  # processes_of's key: when it looked (clock ticks since boot, as /proc/PID/stat)


def processes_of(driver: LocalNodeDriver) -> dict[str, int | None]:
    """What to check for leftover processes later: namespace inodes of the nodes, and the anchor."""
    inodes = {name: netns.namespace_inode(netns.NETNS_DIR / name) for name in driver.plumbing.own_namespaces()}
    return {**inodes, "anchor": driver.store.read().anchor_pid if driver.store.root.exists() else None,
            TAKEN_AT: _ticks_since_boot()}


def leftovers(driver: LocalNodeDriver, processes: dict[str, int | None] | None = None) -> list[str]:
    """Anything of this driver's prefix still on the machine (and processes seen by processes_of).

    A namespace's inode number is reused by the next namespace made on the machine once it is
    freed: a process that started after processes_of looked lives in someone else's namespace."""
    found = []
    taken_at = (processes or {}).get(TAKEN_AT)
    for name, number in (processes or {}).items():
        if name == TAKEN_AT:
            continue
        if name == "anchor":
            found += [f"anchor process {number}"] if number and alive(number) else []
        elif number is not None:
            found += [f"process {pid} of {name}" for pid in runtime.pids_in_netns(number)
                      if alive(pid) and _started_before(pid, taken_at)]
    found += [f"netns {n}" for n in driver.plumbing.own_namespaces()]
    found += [f"link {link}" for link in driver.plumbing.own_links()]
    found += [f"mount {m}" for m in own_mounts(driver.store.root)] if driver.store.root.exists() else []
    if driver.store.root.exists():
        found.append(f"state {driver.store.root}")
    return found



def in_node(driver: LocalNodeDriver, node, script: str, check: bool = True) -> str:
    """Run a shell snippet inside the node's namespaces; return its stdout."""
    result = subprocess.run(driver.ex_enter_command(node, ["sh", "-c", script]),
                            capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise AssertionError(f"in node {node.name}: {script!r} -> {result.returncode}: {result.stderr}")
    return result.stdout


HOSTNAME_SERVER = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 7007)); s.listen()\n"
    "while True:\n"
    "    c, _ = s.accept(); c.sendall(socket.gethostname().encode()); c.close()\n"
)


def start_hostname_server(driver: LocalNodeDriver, node) -> None:
    """A daemon in the node (left its process group) answering its hostname on TCP 7007."""
    if in_node(driver, node, "grep ':1B5F 00000000:0000 0A' /proc/net/tcp || true").strip():
        return  # already listening (started by an earlier test)
    script = f"{sys.executable} -c \"$SERVER\" </dev/null >/dev/null 2>&1 &"
    subprocess.run(driver.ex_enter_command(node, ["env", f"SERVER={HOSTNAME_SERVER}", "setsid",
                                                  "sh", "-c", script]), check=True, timeout=30)
    in_node(driver, node, "for i in $(seq 100); do grep -q ':1B5F ' /proc/net/tcp && exit 0; "
                          "sleep 0.05; done; exit 1")


def ask_hostname(address: str, driver: LocalNodeDriver | None = None, from_node=None) -> str:
    """Connect to TCP 7007 at `address` from the host (or from inside `from_node`)."""
    client = (f"import socket; s = socket.create_connection(('{address}', 7007), timeout=5); "
              f"print(s.recv(100).decode())")
    argv = [sys.executable, "-c", client]
    if from_node is not None:
        argv = driver.ex_enter_command(from_node, argv)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (this machine's pid 1 may reap orphans late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _ticks_since_boot() -> int:
    import os
    import time

    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def _started_before(pid: int, ticks: int | None) -> bool:
    """PID started before TICKS (since boot); True when either is unknown (count it, to be safe)."""
    if ticks is None:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True
    return int(fields[19]) <= ticks  # field 22 of stat, starttime; fields[0] here is field 3
