"""A libvirt node's volumes inside the node: each attached virtio disk (found by its serial under
/dev/disk/by-id) formatted ext4 when blank, put in /etc/fstab and mounted at the spec's mount point,
over SSH as root with the host key pinned from the node's console (as every real cloud's node)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from libcloud.compute.base import Node

from drbootstrap.errors import ProviderError
from drbootstrap.providers.libvirt.driver import volume_serial
from drbootstrap.providers.volumes import volume_name

if TYPE_CHECKING:
    from drbootstrap.providers.libvirt.provider import LibvirtProvider
    from drbootstrap.providers.values import VolumeWanted
    from drbootstrap.ssh import CommandResult, SshTarget

MOUNT_TIMEOUT = 180.0


def mount_script(serial: str, mount: str, label: str) -> str:
    """POSIX sh, safe to run again: waits for the disk, formats it only when it holds no filesystem."""
    device = f"/dev/disk/by-id/virtio-{serial}"
    dev, point, fs_label = shlex.quote(device), shlex.quote(mount), shlex.quote(label[:16])
    return "\n".join([
        "set -e",
        f"i=0; while [ ! -b {dev} ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done",
        f"[ -b {dev} ] || {{ echo 'no disk {device}' >&2; exit 1; }}",
        f"blkid {dev} >/dev/null 2>&1 || mkfs.ext4 -q -L {fs_label} {dev}",
        f"mkdir -p {point}",
        f"grep -q 'virtio-{serial} ' /etc/fstab || echo '{device} {mount} ext4 defaults,nofail 0 2' >> /etc/fstab",
        f"mountpoint -q {point} || mount {point}",
    ])


def _run_retrying(target: SshTarget, script: str) -> CommandResult:
    """The script over SSH; a refused or dropped session (sshd restarting as cloud-init finishes)
    is tried again, up to 5 times 10 s apart."""
    from drbootstrap.ssh import SshError, run_command

    for attempt in range(5):
        try:
            return run_command(target, script, timeout=MOUNT_TIMEOUT)
        except SshError:
            if attempt == 4:
                raise
            time.sleep(10)
    raise AssertionError("unreachable")


def mount_volumes(provider: LibvirtProvider, node: Node, hostname: str, volumes: Sequence[VolumeWanted]) -> None:
    from drbootstrap.images.master_access import master_ssh_target

    address = provider.addresses(node).reachable
    if address is None:
        raise ProviderError(f"{hostname} has no address to mount its volumes over", hint="run `drbootstrap up` again")
    target = master_ssh_target(address, provider.console_text(node), provider.scope.operator_key_path, name=hostname)
    for wanted in volumes:
        name = volume_name(provider.environment, hostname, wanted.name)
        script = mount_script(volume_serial(name), wanted.mount, wanted.name)
        result = _run_retrying(target, script)
        if result.exit_status != 0:
            last = ((result.stderr or result.stdout).strip().splitlines() or ["no output"])[-1]
            raise ProviderError(f"{hostname}: volume {wanted.name} not mounted at {wanted.mount}: {last}",
                                hint=f"see `drbootstrap logs {hostname}`")
