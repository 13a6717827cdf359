"""The worker image built by `drbootstrap images build` boots on a real virtual machine (qemu):
cloud-init takes the NoCloud user-data `render_user_data` makes, runs images/worker/boot.sh
unchanged, whose sshd answers with the host key it printed on the console, as root, with
drbootstrap importable by the system python3. The image comes from the cache when its inputs are
unchanged (CI runs on one machine), else it is built (several minutes).

The guest's network is qemu's user mode with restrict=on (nothing leaves the machine), its SSH
port forwarded to loopback. DRB_QEMU_ACCEL picks the accelerator (default tcg: on machines that
are themselves virtual, KVM may hang a 64-bit guest)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from drbootstrap.images.userdata import NodeBootConfig, render_user_data
from drbootstrap.ssh import SshSession, SshTarget, parse_console_host_keys
from tests.support.prereq import require_binary, require_root, run_cli

pytestmark = pytest.mark.timeout(1800)
BOOT_TIMEOUT = float(os.environ.get("DRB_VM_BOOT_TIMEOUT", "480"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_worker_image_boots_and_runs_boot_sh(tmp_path: Path) -> None:
    require_root()
    require_binary("mmdebstrap", "qemu-system-x86_64", "qemu-img", "genisoimage", "ssh-keygen")
    built = run_cli("images", "build", "worker", "--json")
    assert built.exit_code == 0, built.stderr
    image = json.loads(built.stdout)["images"][0]
    manifest = json.loads(Path(image["manifest"]).read_text())
    assert manifest["boot"] == "direct-kernel" and manifest["root_device"] == "LABEL=drbroot"

    key = tmp_path / "operator"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = NodeBootConfig(environment="demo", domain="demo.internal", hostname="db01", role="db",
                            image="worker", broker_host="10.0.2.2", master_address="10.0.2.2",
                            ssh_authorized_keys=(key.with_suffix(".pub").read_text().strip(),))
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "user-data").write_bytes(render_user_data(config))
    (seed / "meta-data").write_text("instance-id: i-imagetest\nlocal-hostname: vm-imagetest\n")
    subprocess.run(["genisoimage", "-quiet", "-o", str(tmp_path / "seed.iso"), "-V", "cidata", "-r", "-J",
                    str(seed / "user-data"), str(seed / "meta-data")], check=True)
    overlay = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", image["disk"], "-F", "qcow2", str(overlay)],
                   check=True)
    port = _free_port()
    console = tmp_path / "console.log"
    accel = os.environ.get("DRB_QEMU_ACCEL", "tcg")
    vm = subprocess.Popen(
        ["qemu-system-x86_64", "-accel", accel, "-m", str(manifest["min_memory_mib"] * 2), "-smp", "1",
         "-display", "none", "-serial", f"file:{console}", "-monitor", "none",
         "-nic", f"user,restrict=on,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:22",
         "-drive", f"file={overlay},format=qcow2,if=virtio",
         "-drive", f"file={tmp_path / 'seed.iso'},media=cdrom,readonly=on",
         "-kernel", image["kernel"], "-initrd", image["initrd"], "-append", manifest["cmdline"]],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        text = ""
        while time.monotonic() < deadline and vm.poll() is None:
            text = console.read_text(errors="replace") if console.exists() else ""
            if "Cloud-init v." in text and " finished at " in text:
                break
            time.sleep(2)
        assert " finished at " in text, f"cloud-init did not finish in {BOOT_TIMEOUT} s: {text[-1500:]}"
        assert "DataSourceNoCloud" in text
        keys = parse_console_host_keys(text)  # boot.sh's block: its sshd's one ed25519 key
        assert [key.key_type for key in keys] == ["ssh-ed25519"], keys
        target = SshTarget(host="127.0.0.1", port=port, pinned_keys=keys, private_key_path=key, timeout=30)
        with SshSession(target) as session:
            result = session.run("cat /var/lib/drbootstrap/node/boot.log; python3 -c 'import drbootstrap' "
                                 "&& command -v drbootstrap puppet dig && systemctl is-system-running || true")
        assert "drbootstrap worker boot: agent started" in result.stdout, result.stdout
        assert "/usr/local/bin/drbootstrap" in result.stdout and "/usr/bin/puppet" in result.stdout
    finally:
        vm.send_signal(signal.SIGTERM)
        try:
            vm.wait(timeout=20)
        except subprocess.TimeoutExpired:
            vm.kill()
            vm.wait()
        shutil.rmtree(tmp_path / "seed", ignore_errors=True)
