"""SSH to a node whose host key is pinned in advance: push a directory tree, run a command.

Used to reach a master before its broker is up and to copy recipes/ to it. The host key comes
from the node's console output (cloud-init's SSH HOST KEY KEYS block) or its metadata; a server
offering any other key is refused, never trusted on first use.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from drbootstrap.errors import DrbError

BEGIN_HOST_KEYS = "-----BEGIN SSH HOST KEY KEYS-----"
END_HOST_KEYS = "-----END SSH HOST KEY KEYS-----"
_KEY_TOKEN = re.compile(r"\b(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(?:256|384|521))\s+(AAAA[0-9A-Za-z+/]+={0,3})")
# The host key algorithms a pinned key of each type can be offered under.
_ALGORITHMS_FOR_TYPE = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


class SshError(DrbError):
    """Reaching a node over SSH failed."""


class HostKeyMismatchError(SshError):
    """The server offered a host key that is not the one pinned for this node."""


class SshUnreachable(SshError):
    """Nothing accepted an SSH connection at the address and port."""


class SshAuthError(SshError):
    """The server refused our client key."""


@dataclass(frozen=True)
class PinnedHostKey:
    """A host key known before connecting: its type and base64 blob, as in an OpenSSH .pub line."""

    key_type: str
    blob: str

    @property
    def fingerprint(self) -> str:
        return fingerprint_of_blob(base64.b64decode(self.blob))

    def __str__(self) -> str:
        return f"{self.key_type} {self.fingerprint}"


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class SshTarget:
    """Where and as whom to connect; the private key path is read, never logged."""

    host: str
    pinned_keys: tuple[PinnedHostKey, ...]
    private_key_path: Path
    port: int = 22
    username: str = "root"
    timeout: float = 10.0
    name: str = field(default="")  # the node's name, for messages

    @property
    def label(self) -> str:
        where = f"{self.host}:{self.port}"
        return f"{self.name} ({where})" if self.name else where


def fingerprint_of_blob(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint: `SHA256:` + unpadded base64 of the key blob's digest."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_host_key_line(line: str) -> PinnedHostKey:
    """One OpenSSH public key (`TYPE BASE64 [comment]`, or a known_hosts line `HOST TYPE BASE64`)."""
    match = _KEY_TOKEN.search(line)
    if not match:
        raise SshError(
            "not an OpenSSH host public key line",
            hint="give a line like `ssh-ed25519 AAAA... root@host` (from /etc/ssh/ssh_host_*_key.pub)",
        )
    key_type, blob = match.groups()
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError:
        raise SshError(f"{key_type} host key: the key data is not valid base64", hint="copy the whole line") from None
    embedded = _embedded_type(raw)
    if embedded != key_type:
        raise SshError(
            f"host key line says {key_type} but its data holds {embedded or 'no key'}",
            hint="copy the line exactly as the node printed it",
        )
    return PinnedHostKey(key_type, blob)


def parse_console_host_keys(console: str) -> tuple[PinnedHostKey, ...]:
    """Every key in cloud-init's SSH HOST KEY KEYS block of a console log (prefixes tolerated)."""
    start = console.rfind(BEGIN_HOST_KEYS)  # the last boot's block counts after a reboot
    end = console.find(END_HOST_KEYS, start)
    if start < 0 or end < 0:
        raise SshError(
            "the console output holds no complete SSH HOST KEY KEYS block",
            hint="wait until cloud-init has finished booting the node, then read the console again",
        )
    block = console[start + len(BEGIN_HOST_KEYS) : end]
    keys = tuple(parse_host_key_line(line) for line in block.splitlines() if _KEY_TOKEN.search(line))
    if not keys:
        raise SshError("the SSH HOST KEY KEYS block in the console output is empty", hint="check the node's sshd")
    return keys


def parse_host_keys(text: str) -> tuple[PinnedHostKey, ...]:
    """Host keys from a console log (its KEYS block) or from metadata / known_hosts lines."""
    if BEGIN_HOST_KEYS in text:
        return parse_console_host_keys(text)
    keys = tuple(parse_host_key_line(line) for line in text.splitlines() if _KEY_TOKEN.search(line))
    if not keys:
        raise SshError(
            "no SSH host public key found in the text given", hint="give the node's console output or its .pub lines"
        )
    return keys


def _embedded_type(raw: bytes) -> str | None:
    if len(raw) < 4:
        return None
    length = int.from_bytes(raw[:4], "big")
    return raw[4 : 4 + length].decode("ascii", "replace") if 4 + length <= len(raw) else None


class PinnedHostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Accept exactly the pinned keys; refuse anything else with both fingerprints named."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        offered = fingerprint_of_blob(key.asbytes())
        if any(pinned.fingerprint == offered for pinned in self.target.pinned_keys):
            return
        raise _mismatch(self.target, f"{key.get_name()} {offered}")


def _mismatch(target: SshTarget, offered: str) -> HostKeyMismatchError:
    expected = ", ".join(str(key) for key in target.pinned_keys)
    return HostKeyMismatchError(
        f"SSH host key of {target.label} does not match: expected {expected}, offered {offered}; refusing to connect",
        hint="the node may have been replaced or the connection intercepted; re-read its console host keys",
    )


def _disabled_host_key_algorithms(pinned: tuple[PinnedHostKey, ...]) -> list[str]:
    """Every algorithm paramiko knows except those of the pinned keys, so the server must show one of them."""
    allowed = {alg for key in pinned for alg in _ALGORITHMS_FOR_TYPE.get(key.key_type, (key.key_type,))}
    # types-paramiko leaves out this (private) class attribute the whole list comes from.
    return [alg for alg in paramiko.Transport._preferred_keys if alg not in allowed]  # type: ignore[attr-defined]


class SshSession:
    """An authenticated connection to one node; use as a context manager."""

    def __init__(self, target: SshTarget) -> None:
        if not target.pinned_keys:
            raise SshError(
                f"no pinned host key for {target.label}", hint="pass the node's host keys from its console output"
            )
        self.target = target
        self._client = paramiko.SSHClient()
        self._client.set_missing_host_key_policy(PinnedHostKeyPolicy(target))

    def __enter__(self) -> SshSession:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        target = self.target
        try:
            key = paramiko.PKey.from_path(target.private_key_path)
        except (OSError, paramiko.SSHException) as error:
            raise SshError(
                f"cannot read SSH client key {target.private_key_path}: {type(error).__name__}",
                hint="give an unencrypted OpenSSH private key file readable by this user",
            ) from None
        try:
            self._client.connect(
                target.host, port=target.port, username=target.username, pkey=key,
                look_for_keys=False, allow_agent=False, timeout=target.timeout,
                banner_timeout=target.timeout, auth_timeout=target.timeout,
                disabled_algorithms={"keys": _disabled_host_key_algorithms(target.pinned_keys)},
            )
        except HostKeyMismatchError:
            self.close()
            raise
        except paramiko.AuthenticationException:
            self.close()
            raise SshAuthError(
                f"SSH server {target.label} refused the client key for user {target.username}",
                hint="check the node's authorized_keys holds the matching public key",
            ) from None
        except paramiko.SSHException as error:
            self.close()
            if "host key" in str(error).lower():  # no common host key algorithm: none pinned is offered
                raise _mismatch(target, "no key of a pinned type") from None
            raise SshError(f"SSH negotiation with {target.label} failed: {error}") from None
        except (TimeoutError, OSError) as error:
            self.close()
            raise SshUnreachable(
                f"cannot connect to SSH at {target.label}: {getattr(error, 'strerror', None) or error}",
                hint="check the node is up, its address, and that sshd listens on that port",
            ) from None

    def close(self) -> None:
        self._client.close()

    def push_tree(self, local_dir: Path, remote_dir: str, *, replace: bool = False) -> int:
        """Copy LOCAL_DIR's files into REMOTE_DIR (created), keeping permission bits; return the file count.

        With replace=True the tree is uploaded beside REMOTE_DIR and swapped in by renames, so
        Puppet never reads a half-copied tree and files deleted locally disappear remotely.
        """
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise SshError(f"{local_dir} is not a directory", hint="push a directory such as recipes/")
        remote_dir = remote_dir.rstrip("/") or "/"
        with self._client.open_sftp() as sftp:
            if not replace:
                return _upload_tree(sftp, local_dir, remote_dir)
            staging = f"{remote_dir}.incoming-{secrets.token_hex(4)}"
            retired = f"{remote_dir}.retired-{secrets.token_hex(4)}"
            copied = _upload_tree(sftp, local_dir, staging)
            had_old = _exists(sftp, remote_dir)
            if had_old:
                sftp.rename(remote_dir, retired)
            sftp.rename(staging, remote_dir)
            if had_old:
                _remove_tree(sftp, retired)
            return copied

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run COMMAND through the node's shell; return its exit status and output."""
        _stdin, stdout, stderr = self._client.exec_command(command, timeout=timeout)
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
        return CommandResult(stdout.channel.recv_exit_status(), out, err)


def _upload_tree(sftp: paramiko.SFTPClient, local_dir: Path, remote_dir: str) -> int:
    copied = 0
    _make_remote_dirs(sftp, remote_dir)
    for path in sorted(local_dir.rglob("*")):
        remote = posixpath.join(remote_dir, path.relative_to(local_dir).as_posix())
        if path.is_symlink():
            continue  # a link may point outside the tree: its target is not ours to send
        if path.is_dir():
            _make_remote_dirs(sftp, remote)
        elif path.is_file():
            sftp.put(str(path), remote)
            sftp.chmod(remote, stat.S_IMODE(path.stat().st_mode))
            copied += 1
    return copied


def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        sftp.lstat(path)
    except FileNotFoundError:
        return False
    return True


def _remove_tree(sftp: paramiko.SFTPClient, path: str) -> None:
    for entry in sftp.listdir_attr(path):
        child = posixpath.join(path, entry.filename)
        if stat.S_ISDIR(entry.st_mode or 0):
            _remove_tree(sftp, child)
        else:
            sftp.remove(child)
    sftp.rmdir(path)


def _make_remote_dirs(sftp: paramiko.SFTPClient, remote_dir: str) -> None:
    path = ""
    for part in remote_dir.split("/"):
        path = posixpath.join(path, part) if path else (part or "/")
        if not part:
            continue
        try:
            sftp.stat(path)
        except FileNotFoundError:
            sftp.mkdir(path)


def push_tree(target: SshTarget, local_dir: Path, remote_dir: str, *, replace: bool = False) -> int:
    """Connect, copy LOCAL_DIR to REMOTE_DIR (swapped in whole with replace=True), disconnect."""
    with SshSession(target) as session:
        return session.push_tree(local_dir, remote_dir, replace=replace)


def run_command(target: SshTarget, command: str, timeout: float | None = None) -> CommandResult:
    """Connect, run COMMAND, disconnect."""
    with SshSession(target) as session:
        return session.run(command, timeout)


def known_hosts_text(target: SshTarget) -> str:
    """OpenSSH known_hosts lines trusting exactly the pinned keys, under the alias openssh_argv uses."""
    return "".join(f"{_alias(target)} {key.key_type} {key.blob}\n" for key in target.pinned_keys)


def openssh_argv(target: SshTarget, known_hosts: Path, command: str = "", *, tty: bool = False) -> list[str]:
    """The OpenSSH client's command line for TARGET, trusting only KNOWN_HOSTS (known_hosts_text) and
    offering only the target's key: for an interactive shell or a followed log, where a person types."""
    argv = ["ssh", "-i", str(target.private_key_path), "-p", str(target.port),
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", f"HostKeyAlias={_alias(target)}",
            "-o", f"ConnectTimeout={int(target.timeout)}", "-o", "LogLevel=ERROR",
            "-t" if tty else "-T", f"{target.username}@{target.host}"]
    return [*argv, command] if command else argv


def _alias(target: SshTarget) -> str:
    return f"drbootstrap-{target.name or target.host}"
