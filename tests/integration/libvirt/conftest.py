"""The libvirt provider's integration tests: libvirtd answering on qemu:///system (started here when
no init system did, stopped after), the images `drbootstrap images build` made, and an environment
spec on a subnet nothing on this machine uses, run through the CLI as a process."""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.libvirtd import libvirt_daemons
from tests.support.prereq import REPO_ROOT, require, require_binary, require_root

URI = "qemu:///system"
# The provider's default (auto: KVM where the CPU offers it, else emulation); DRB_LIBVIRT_DOMAIN_TYPE
# forces kvm or qemu.
DOMAIN_TYPE = os.environ.get("DRB_LIBVIRT_DOMAIN_TYPE", "auto")


@pytest.fixture(scope="session")
def libvirtd() -> Iterator[None]:
    require_root()
    require_binary("libvirtd", "virtlogd", "virsh", "qemu-img", "genisoimage")
    require(Path("/dev/kvm").exists() or DOMAIN_TYPE != "kvm", "/dev/kvm (or DRB_LIBVIRT_DOMAIN_TYPE=qemu)")
    try:
        import libvirt  # noqa: F401
    except ImportError:
        require(False, "the libvirt Python binding (pip install -e . builds libvirt-python)")
    with libvirt_daemons():
        yield


def free_subnet() -> str:
    """A /24 no interface here and no libvirt network uses."""
    from drbootstrap.providers.libvirt.network import host_subnets, overlaps

    taken = host_subnets("")
    taken += [("libvirt", line.split()[-1]) for line in _libvirt_subnets()]
    for _ in range(200):
        candidate = str(ipaddress.ip_network(f"10.{random.randint(214, 249)}.{random.randint(0, 255)}.0/24"))
        if not overlaps(candidate, taken):
            return candidate
    raise RuntimeError("no free /24 in 10.214-249.x")


def _libvirt_subnets() -> list[str]:
    import libvirt

    from drbootstrap.providers.libvirt.xml import network_subnet

    connection = libvirt.open(URI)
    try:
        return [f"x {s}" for s in (network_subnet(n.XMLDesc(0)) for n in connection.listAllNetworks()) if s]
    finally:
        connection.close()


@dataclass
class VirtEnvironment:
    home: Path
    spec_file: Path
    name: str
    image_cache: Path | None = None  # DRB_IMAGE_CACHE for the CLI; None: the default cache

    def env(self) -> dict[str, str]:
        env = {**os.environ, "DRB_STATE_DIR": str(self.home / "state"), "DRB_HOME": str(REPO_ROOT)}
        if self.image_cache is not None:
            env["DRB_IMAGE_CACHE"] = str(self.image_cache)
        return env

    def cli(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "drbootstrap", *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)

    def ssh(self, hostname: str, command: str) -> str:
        # one argument: `drbootstrap ssh` joins its words as OpenSSH does, and the node's shell reads
        # the line (`sh -c cat FILE` would run a bare `cat`)
        run = self.cli("ssh", str(self.spec_file), hostname, "--", command, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        return run.stdout.strip()

    @property
    def paths(self):  # EnvironmentPaths
        from drbootstrap.paths import EnvironmentPaths

        return EnvironmentPaths(self.home / "state", self.name)


def make_environment(spec_text: str, name: str, *, image_cache: Path | None = None) -> VirtEnvironment:
    home = Path(tempfile.mkdtemp(prefix="drb-virt-", dir="/var/tmp"))
    text = spec_text.replace("10.214.0.0/24", free_subnet()).replace("environment: virt", f"environment: {name}")
    if DOMAIN_TYPE != "auto":
        text = text.replace("  # extra:\n  #   domain_type: auto", f"  extra:\n    domain_type: {DOMAIN_TYPE}")
    spec_file = home / "env.yaml"
    spec_file.write_text(text)
    return VirtEnvironment(home, spec_file, name, image_cache)


def leftovers(name: str) -> list[str]:
    """Whatever of environment `name` libvirt or this machine still holds: domains, networks,
    bridges, files, QEMU processes."""
    import libvirt

    from drbootstrap.providers.libvirt.network import bridge_name
    from drbootstrap.providers.libvirt.provider import DEFAULT_STORAGE_DIR

    prefix = f"drb-{name}"
    connection = libvirt.open(URI)
    try:
        found = [f"domain {d.name()}" for d in connection.listAllDomains() if d.name().startswith(prefix + "-")]
        found += [f"network {n.name()}" for n in connection.listAllNetworks() if n.name() == prefix]
    finally:
        connection.close()
    if Path(f"/sys/class/net/{bridge_name(name)}").exists():
        found.append(f"bridge {bridge_name(name)}")
    if (Path(DEFAULT_STORAGE_DIR) / name).exists():
        found.append(f"files {Path(DEFAULT_STORAGE_DIR) / name}")
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    found += [f"process {line.split()[0]}" for line in ps.splitlines() if f"guest={prefix}-" in line]
    return found


def tear_down(environment: VirtEnvironment) -> None:
    try:
        environment.cli("down", str(environment.spec_file), "--yes", timeout=600)
    finally:
        shutil.rmtree(environment.home, ignore_errors=True)
