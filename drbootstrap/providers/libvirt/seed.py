"""A node's cloud-init NoCloud seed: an ISO labelled `cidata` holding user-data (the same text every
other cloud gets), meta-data (instance-id, hostname) and network-config (its static address on the
environment's isolated network; no gateway: nothing is routed off it)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from drbootstrap.errors import PrerequisiteError, ProviderError

ISO_TOOLS = ("genisoimage", "xorrisofs", "mkisofs")


@dataclass(frozen=True)
class Seed:
    instance_id: str
    hostname: str
    mac: str
    address: str  # the node's address
    prefix: int
    user_data: str

    def meta_data(self) -> str:
        return yaml.safe_dump({"instance-id": self.instance_id, "local-hostname": self.hostname})

    def network_config(self) -> str:
        return yaml.safe_dump({"version": 2, "ethernets": {"eth0": {
            "match": {"macaddress": self.mac}, "set-name": "eth0",
            "addresses": [f"{self.address}/{self.prefix}"]}}}, sort_keys=False)


def seed_for(instance_id: str, hostname: str, mac: str, address: str, subnet: str, user_data: str) -> Seed:
    return Seed(instance_id, hostname, mac, address, ipaddress.ip_network(subnet).prefixlen, user_data)


def iso_tool() -> str:
    for tool in ISO_TOOLS:
        if shutil.which(tool):
            return tool
    raise PrerequisiteError("no ISO 9660 writer for the cloud-init seed (genisoimage, xorrisofs or mkisofs)",
                            hint="install Debian's genisoimage")


def write_seed_iso(seed: Seed, path: Path) -> None:
    """The seed ISO at `path` (0600: user-data holds the node's own secrets), written whole or not at all."""
    tool = iso_tool()
    with tempfile.TemporaryDirectory(prefix="drb-seed-") as staging:
        files = {"user-data": seed.user_data or "", "meta-data": seed.meta_data(),
                 "network-config": seed.network_config()}
        for name, text in files.items():
            target = Path(staging) / name
            target.write_text(text)
            target.chmod(0o600)
        partial = path.with_name(path.name + ".part")
        command = [tool, "-quiet", "-output", str(partial), "-volid", "cidata", "-joliet", "-rock", *files]
        old_umask = os.umask(0o077)
        try:
            done = subprocess.run(command, cwd=staging, capture_output=True, text=True, timeout=60, check=False)
        finally:
            os.umask(old_umask)
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ProviderError(f"{tool} could not write the seed ISO for {seed.hostname}: {last}",
                                hint=f"check free space and permissions in {path.parent}")
        partial.chmod(0o600)
        partial.replace(path)
