"""The dns agent (on the master): add/remove a node's forward and reverse entries, move a name to a
standby's address, then SIGHUP dnsmasq."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drbootstrap.agent.registry import ActionFailed, Input, RpcAgent, action
from drbootstrap.dns.hosts_file import HostsFileError, add_entry, move_name, read_entries, remove_entry
from drbootstrap.messaging.envelope import Request, StatusCode

if TYPE_CHECKING:
    from drbootstrap.agent.config import DnsConfig

_NAME = r"[A-Za-z0-9.\-]{1,253}"
_ADDRESS = r"[0-9A-Fa-f.:]{2,45}"


class DnsAgent(RpcAgent):
    name = "dns"
    description = "Names in the master's dnsmasq: add and remove forward + reverse entries."

    @action(
        "Map NAME <-> ADDRESS and reload dnsmasq",
        name=Input("string", required=True, pattern=_NAME),
        address=Input("string", required=True, pattern=_ADDRESS),
        replace=Input("boolean"),
    )
    def add(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        config = self._config()
        try:
            entry = add_entry(
                Path(config.hosts_file),
                data["name"],
                data["address"],
                domain=config.domain,
                replace=bool(data.get("replace")),
            )
        except HostsFileError as error:
            raise ActionFailed(StatusCode.INVALID_DATA, str(error)) from error
        return {"address": entry.address, "names": list(entry.names), "reloaded": self._reload()}

    @action(
        "Make NAME resolve to ADDRESS beside that address's own name (a standby taking over) and reload dnsmasq",
        name=Input("string", required=True, pattern=_NAME),
        address=Input("string", required=True, pattern=_ADDRESS),
    )
    def move(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        config = self._config()
        try:
            entry = move_name(Path(config.hosts_file), data["name"], data["address"], domain=config.domain)
        except HostsFileError as error:
            raise ActionFailed(StatusCode.INVALID_DATA, str(error)) from error
        return {"address": entry.address, "names": list(entry.names), "reloaded": self._reload()}

    @action(
        "Remove every entry for NAME and/or ADDRESS and reload dnsmasq",
        name=Input("string", pattern=_NAME),
        address=Input("string", pattern=_ADDRESS),
    )
    def remove(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        config = self._config()
        try:
            removed = remove_entry(
                Path(config.hosts_file), name=data.get("name"), address=data.get("address"), domain=config.domain
            )
        except HostsFileError as error:
            raise ActionFailed(
                StatusCode.MISSING_DATA if "needs" in error.message else StatusCode.INVALID_DATA, str(error)
            ) from error
        return {"removed": [entry.line() for entry in removed], "reloaded": self._reload() if removed else False}

    @action("Every entry in the hosts file")
    def list(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        return {"entries": [entry.line() for entry in read_entries(Path(self._config().hosts_file))]}

    def _config(self) -> DnsConfig:
        config = self.context.config.dns
        if config is None:
            raise ActionFailed(StatusCode.ABORTED, "this node has no dns section in its agent config")
        return config

    def _reload(self) -> bool:
        """SIGHUP dnsmasq so it re-reads the hosts file; False when it is not running."""
        pid_file = self._config().dnsmasq_pid_file
        if not pid_file:
            return False
        try:
            pid = int(Path(pid_file).read_text().split()[0])
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError, IndexError):
            return False
        return True
