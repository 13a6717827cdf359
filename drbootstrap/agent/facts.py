"""A node's facts (YAML file + built-ins hostname, fqdn, ip, role) and Puppet classes, reloaded on change."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger("drbootstrap.agent")


class NodeFacts:
    """Facts and classes of one agent identity; files are re-read only when their mtime changes."""

    def __init__(
        self,
        identity: str,
        *,
        facts_file: str | None = None,
        classes_file: str | None = None,
        role: str | None = None,
        ip: str | None = None,
    ) -> None:
        self.identity = identity
        self.facts_file = Path(facts_file) if facts_file else None
        self.classes_file = Path(classes_file) if classes_file else None
        self._builtin = {
            "hostname": identity.split(".")[0],
            "fqdn": identity if "." in identity else _fqdn(identity),
            "ip": ip or _primary_ip(),
            "identity": identity,
        }
        if role:
            self._builtin["role"] = role
        self._facts_cache: tuple[float, dict[str, Any]] = (-1.0, {})
        self._classes_cache: tuple[float, list[str]] = (-1.0, [])

    def facts(self) -> dict[str, Any]:
        merged = dict(self._builtin)
        merged.update(self._file_facts())
        merged.setdefault("role", self._builtin.get("role", ""))
        return merged

    def classes(self) -> list[str]:
        if self.classes_file is None:
            return []
        mtime = _mtime(self.classes_file)
        if mtime != self._classes_cache[0]:
            try:
                lines = self.classes_file.read_text().split()
            except OSError:
                lines = []
            self._classes_cache = (mtime, [line.strip() for line in lines if line.strip()])
        return self._classes_cache[1]

    def _file_facts(self) -> dict[str, Any]:
        if self.facts_file is None:
            return {}
        mtime = _mtime(self.facts_file)
        if mtime != self._facts_cache[0]:
            import yaml

            loaded: dict[str, Any] = {}
            try:
                data = yaml.safe_load(self.facts_file.read_text()) or {}
                if isinstance(data, dict):
                    loaded = {str(k): v for k, v in data.items()}
                else:
                    log.warning("%s: facts file is not a mapping; ignoring it", self.facts_file)
            except (OSError, ValueError, yaml.YAMLError) as error:
                log.warning("%s: cannot read facts: %s", self.facts_file, error)
            self._facts_cache = (mtime, loaded)
        return self._facts_cache[1]


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -2.0


def _fqdn(name: str) -> str:
    return socket.getfqdn() if name == socket.gethostname() else name


def _primary_ip() -> str:
    """The source address the kernel would use; no packet is sent (UDP connect only)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))
            return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
