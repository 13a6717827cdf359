"""A real OpenSSH server for tests: its own host key, one authorised client key, loopback only.

    from tests.support.sshd import SshServer
    with SshServer(tmp_path) as server:
        server.host, server.port           # 127.0.0.1 and a free port
        server.host_key_line               # "ssh-ed25519 AAAA... " (what a node's console prints)
        server.client_key                  # private key file authorised for root
        server.console_output()            # a cloud-init style console log with the host keys block

Everything (keys, sshd_config, pid file, authorized_keys) lives in the given directory; sshd runs
with -D -e as our child in its own process group and is stopped by pid. Needs root.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.support.server_process import free_port, stop_process, wait_until

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it; Debian's init script makes it


def generate_key(path: Path, key_type: str = "ed25519") -> str:
    """An unencrypted key pair at PATH / PATH.pub; returns the public line."""
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "drb-test", "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


class SshServer:
    def __init__(self, directory: Path, host: str = "127.0.0.1") -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = 0
        self.host_key = self.directory / "ssh_host_ed25519_key"
        self.client_key = self.directory / "client_ed25519"
        self.host_key_line = ""
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> SshServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def console_output(self) -> str:
        """What a node booted by cloud-init prints on its console, host key block included."""
        return (
            "[   3.201] cloud-init[412]: Cloud-init v. 23.1 running 'modules:final'\n"
            "ci-info: no authorized SSH keys fingerprints found for user ubuntu.\n"
            "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:ignored root@node (ED25519)\n"
            "-----END SSH HOST KEY FINGERPRINTS-----\n"
            "-----BEGIN SSH HOST KEY KEYS-----\n"
            f"{self.host_key_line}\n"
            "-----END SSH HOST KEY KEYS-----\n"
            "[   4.010] cloud-init[412]: Cloud-init v. 23.1 finished\n"
        )

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self.host_key_line = generate_key(self.host_key)
        client_public = generate_key(self.client_key)
        (self.directory / "authorized_keys").write_text(client_public + "\n")
        self.port = free_port(self.host)
        config = self.directory / "sshd_config"
        config.write_text(
            f"ListenAddress {self.host}\n"
            f"Port {self.port}\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.directory}/sshd.pid\n"
            f"AuthorizedKeysFile {self.directory}/authorized_keys\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "Subsystem sftp internal-sftp\n"
        )
        log = self.directory / "sshd.log"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self._banner, self.process, "sshd", log)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def _banner(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
            return sock.recv(64).startswith(b"SSH-")
