"""Atomic edits of dnsmasq's hosts file: one `ADDRESS FQDN SHORT` line per node gives forward and PTR.

Used by the dns agent on the master. Writes go to a temp file and os.replace(), under an flock, so
dnsmasq (re-reading on SIGHUP) never sees half a file and two requests never lose an edit.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from drbootstrap.errors import DrbError

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class HostsFileError(DrbError):
    """A name or address that cannot go into the hosts file, or a conflicting entry."""


@dataclass(frozen=True)
class HostEntry:
    address: str
    names: tuple[str, ...]  # first is the canonical name (what PTR answers)

    def line(self) -> str:
        return f"{self.address} {' '.join(self.names)}"


def validate_name(name: str) -> str:
    name = name.rstrip(".").lower()
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise HostsFileError(
            f"{name!r} is not a valid host name",
            hint="use labels of letters, digits and hyphens, e.g. web01.demo.internal",
        )
    return name


def validate_address(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise HostsFileError(f"{address!r} is not an IP address", hint="give an IPv4 or IPv6 address") from None


def names_for(name: str, domain: str | None) -> tuple[str, ...]:
    """(fqdn, short) for a name; a bare name gets `domain` appended when one is known."""
    name = validate_name(name)
    if domain and "." not in name:
        return (f"{name}.{validate_name(domain)}", name)
    if domain and name.endswith("." + domain.lower().rstrip(".")):
        return (name, name.split(".")[0])
    return (name,)


def read_entries(path: Path) -> list[HostEntry]:
    entries = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split()
        if len(line) >= 2:
            entries.append(HostEntry(line[0], tuple(line[1:])))
    return entries


def add_entry(path: Path, name: str, address: str, *, domain: str | None = None, replace: bool = False) -> HostEntry:
    """Map name <-> address (forward and reverse). Re-adding the same pair changes nothing.

    An address held by another name, or a name at another address, is a conflict unless
    `replace` is true: then the entry at the address goes, and the name leaves the entry it was
    on (which stays for its other names: a standby that was answering for this name keeps its own).
    """
    names = names_for(name, domain)
    address = validate_address(address)
    entry = HostEntry(address, names)
    with _locked(path):
        kept = []
        for existing in read_entries(path):
            same_name = bool(set(existing.names) & set(names))
            same_address = existing.address == address
            if same_name and same_address and existing.names == names:
                continue
            if same_name or same_address:
                if not replace:
                    raise HostsFileError(
                        f"{path}: {existing.line()!r} conflicts with {entry.line()!r}",
                        hint="remove the old entry first or pass replace=true",
                    )
                others = tuple(n for n in existing.names if n not in names)
                if not same_address and others:
                    kept.append(HostEntry(existing.address, others))
                continue
            kept.append(existing)
        kept.append(entry)
        _write(path, kept)
    return entry


def move_name(path: Path, name: str, address: str, *, domain: str | None = None) -> HostEntry:
    """Make `name` resolve to `address`, beside the names already there (a standby answering for a
    dead node): the name leaves every other entry; the address's own name keeps answering its PTR."""
    names = names_for(name, domain)
    address = validate_address(address)
    with _locked(path):
        kept, moved = [], HostEntry(address, names)
        for existing in read_entries(path):
            others = tuple(n for n in existing.names if n not in names)
            if existing.address == address:
                moved = HostEntry(address, others + names)
            elif others:
                kept.append(HostEntry(existing.address, others))
        _write(path, kept + [moved])
    return moved


def remove_entry(
    path: Path, *, name: str | None = None, address: str | None = None, domain: str | None = None
) -> list[HostEntry]:
    """Remove every entry holding `name` or `address`; returns what was removed (maybe nothing)."""
    if not name and not address:
        raise HostsFileError("remove needs a name or an address", hint="pass name=... or address=...")
    names = set(names_for(name, domain)) if name else set()
    wanted_address = validate_address(address) if address else None
    with _locked(path):
        kept, removed = [], []
        for existing in read_entries(path):
            if (names & set(existing.names)) or existing.address == wanted_address:
                removed.append(existing)
            else:
                kept.append(existing)
        if removed:
            _write(path, kept)
    return removed


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)


def _write(path: Path, entries: list[HostEntry]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = "# managed by drbootstrap's dns agent\n" + "".join(entry.line() + "\n" for entry in entries)
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
