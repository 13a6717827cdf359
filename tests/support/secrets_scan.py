"""Look for known secret values where they must never be: a run's traces and process listings.

Secrets (the PSK, autosign tokens, the ed25519 signing keys of the operator and of each node, TSIG
keys, cloud keys, the broker CA's and the master's issuing key, the operator's SSH key) may live only in
their own 0600 files. `scan_for_secrets` reports, without the values, every trace under a state
directory that holds one (logs, reports, the journal, console and node logs), every file holding
one that others can read, and every process whose arguments (any process) or environment (those
readable by a non-root user) hold one.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

TRACE_SUFFIXES = (".log", ".out", ".err", ".md", ".html", ".txt")
# Other JSON files may hold secrets by design (the node's metadata holds its user-data), at 0600.
TRACE_NAMES = frozenset({"console", "stdout", "stderr", "journal.json", "report.json", "state.json",
                         "failover.json", "failover-report.json"})
TRACE_DIRECTORIES = frozenset({"log", "logs"})
MAX_BYTES_READ = 64 * 1024 * 1024  # per file


@dataclass(frozen=True)
class KnownSecret:
    name: str  # what it is, for the report ("the PSK"); the value is never reported
    value: str

    def found_in(self, data: bytes) -> bool:
        return self.value.encode() in data


def environment_secrets(state_dir: Path, environment: str) -> list[KnownSecret]:
    """The secrets an `up` of ENVIRONMENT made: its PSK, each node's autosign tokens, the operator's
    and each node's ed25519 signing key, the broker CA's and the master's issuing key, the SSH key."""
    from drbootstrap.executor.secrets import autosign_token  # the one derivation, not a copy

    env_dir = state_dir / "environments" / environment
    found: list[KnownSecret] = []
    psk_file = env_dir / "psk"
    if psk_file.is_file():
        psk = psk_file.read_text().strip()
        found.append(KnownSecret("the PSK", psk))
        journal = json.loads((env_dir / "journal.json").read_text())
        for hostname, node in journal["nodes"].items():
            for generation in range(node.get("generation", 0) + 1):
                token = autosign_token(psk, environment, hostname, generation)
                found.append(KnownSecret(f"the autosign token of {hostname} (generation {generation})", token))
    keys_dir = env_dir / "keys"
    for private in sorted([keys_dir / "operator.pem", *(keys_dir / "nodes").glob("*.pem")]):
        if private.is_file():
            # PKCS#8 ed25519: one base64 line, whose last 32 bytes are the key (its first 16 are a header)
            body = next(line for line in private.read_text().splitlines() if not line.startswith("-----"))
            found.append(KnownSecret(f"the ed25519 signing key {private.relative_to(env_dir)}", body[22:]))
    for name, what in (("broker-ca.key", "the broker CA's key"),
                       ("broker-issuer.key", "the master's broker issuing key")):
        pem = env_dir / name
        if pem.is_file():
            lines = [line for line in pem.read_text().splitlines() if len(line) >= 32 and not line.startswith("-----")]
            found += [KnownSecret(f"line {index} of {what}", line) for index, line in enumerate(lines, start=1)]
    key_file = env_dir / "ssh-key.pem"
    if key_file.is_file():
        body = [line for line in key_file.read_text().splitlines() if line and not line.startswith("-----")]
        # the first lines of an OpenSSH key carry its header and public key; the rest is private
        for index, line in enumerate(body[2:-1], start=2):
            if len(line) >= 32:
                found.append(KnownSecret(f"line {index + 1} of the operator's SSH private key", line))
    return found


def scan_for_secrets(secrets: list[KnownSecret], state_dir: Path, *, processes: bool = True) -> list[str]:
    """Every place a secret is that it must not be, one line each, naming the secret, not its value."""
    secrets = [s for s in secrets if len(s.value) >= 8]  # a short value would match by chance
    findings = _scan_files(secrets, state_dir)
    if processes:
        findings += _scan_processes(secrets)
    return findings


def _is_trace(path: Path, root: Path) -> bool:
    relative = path.relative_to(root)
    return (
        path.suffix in TRACE_SUFFIXES
        or path.name in TRACE_NAMES
        or any(part in TRACE_DIRECTORIES for part in relative.parts[:-1])
    )


def _scan_files(secrets: list[KnownSecret], root: Path) -> list[str]:
    findings = []
    for directory, _, names in os.walk(root, followlinks=False):
        for name in names:
            path = Path(directory) / name
            try:
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode):
                    continue
                with path.open("rb") as handle:
                    data = handle.read(MAX_BYTES_READ)
            except OSError:
                continue  # gone meanwhile
            held = [s.name for s in secrets if s.found_in(data)]
            if not held:
                continue
            if _is_trace(path, root):
                findings.append(f"{path}: a trace holds {', '.join(held)}")
            elif info.st_mode & 0o077:
                findings.append(f"{path}: mode {stat.S_IMODE(info.st_mode):04o} (not 0600) holds {', '.join(held)}")
    return findings


def _scan_processes(secrets: list[KnownSecret]) -> list[str]:
    findings = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            owner = entry.stat().st_uid
            # a process's environ is readable by its own user: check those a non-root user can read
            environ = (entry / "environ").read_bytes() if owner != 0 else b""
        except OSError:
            continue  # ended meanwhile
        for where, data in (("arguments", cmdline), ("environment", environ)):
            held = [s.name for s in secrets if s.found_in(data)]
            if held:
                command = cmdline.split(b"\0", 1)[0].decode(errors="replace")
                findings.append(f"process {entry.name} ({command}): its {where} hold {', '.join(held)}")
    return findings
