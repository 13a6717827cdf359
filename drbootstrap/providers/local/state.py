"""The local cloud's persistent state: one JSON document under <state_dir>/local-cloud/, locked.

Every invocation (CLI, driver in another process, the in-node reboot helper) reads and writes
the same file; `StateStore.transaction()` holds an fcntl lock and replaces the file atomically.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drbootstrap.errors import ProviderError

STATE_VERSION = 1


@dataclass
class NodeRecord:
    id: str
    name: str
    index: int  # per-state-dir counter: names the namespace and the host-side veth
    network: str
    address: str
    image: str
    size: str
    hostname: str
    tags: dict[str, str] = field(default_factory=dict)
    client_token: str | None = None
    user_data_kind: str = "none"  # none | script | cloud-config
    boot_count: int = 0
    launched_at: float = 0.0
    created_at: float = 0.0
    image_dir: str = ""
    phase: str = "creating"  # creating | boot | rebooting | destroying


@dataclass
class VolumeRecord:
    id: str
    name: str
    size_gb: int
    node_id: str | None = None
    mount_path: str | None = None
    created_mount_path: bool = False  # we made the directory on the host fs; remove on detach
    from_snapshot: str | None = None
    created_at: float = 0.0


@dataclass
class SnapshotRecord:
    id: str
    name: str
    volume_id: str
    size_gb: int
    created_at: float = 0.0
    tags: dict[str, str] = field(default_factory=dict)
    size_bytes: int | None = None  # what the copy holds (files' sizes), not the volume's size


@dataclass
class AddressRecord:
    address: str
    network: str
    allocation_id: str
    node_id: str | None = None


@dataclass
class CloudState:
    next_index: int = 1
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    volumes: dict[str, VolumeRecord] = field(default_factory=dict)
    snapshots: dict[str, SnapshotRecord] = field(default_factory=dict)
    addresses: dict[str, AddressRecord] = field(default_factory=dict)
    # addresses chosen for nodes being created right now (not yet committed as NodeRecords)
    reserved: dict[str, str] = field(default_factory=dict)
    anchor_pid: int | None = None  # host process whose namespaces in-node reboots enter

    def used_addresses(self, network: str) -> set[str]:
        used = {n.address for n in self.nodes.values() if n.network == network}
        used |= {a.address for a in self.addresses.values() if a.network == network}
        used |= set(self.reserved)
        return used

    def to_json(self) -> dict:
        return {"version": STATE_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> CloudState:
        return cls(
            next_index=data.get("next_index", 1),
            nodes={k: NodeRecord(**v) for k, v in data.get("nodes", {}).items()},
            volumes={k: VolumeRecord(**v) for k, v in data.get("volumes", {}).items()},
            snapshots={k: SnapshotRecord(**v) for k, v in data.get("snapshots", {}).items()},
            addresses={k: AddressRecord(**v) for k, v in data.get("addresses", {}).items()},
            reserved=dict(data.get("reserved", {})),
            anchor_pid=data.get("anchor_pid"),
        )


def name_prefix(state_dir: Path) -> str:
    """A short prefix unique to this state directory, so two state dirs never share a name."""
    digest = hashlib.sha1(str(state_dir.resolve()).encode()).hexdigest()
    return "d" + digest[:6]


class StateStore:
    """The JSON state file and its lock; every change goes through `transaction()`."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "local-cloud"
        self.path = self.root / "state.json"
        self.lock_path = self.root / "lock"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes and threads (flock is per open file description)."""
        self.ensure()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self) -> CloudState:
        try:
            return CloudState.from_json(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return CloudState()

    def write(self, state: CloudState) -> None:
        self.ensure()
        tmp = self.path.with_name(f".state.{os.getpid()}.{id(state)}.tmp")
        try:
            with open(tmp, "w") as handle:
                json.dump(state.to_json(), handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as error:  # disk full, read-only: the file still holds the last write
            tmp.unlink(missing_ok=True)
            raise ProviderError(f"local cloud: cannot write its state {self.path}: {error.strerror or error}",
                                hint="free space in the state directory (DRB_STATE_DIR), then run the "
                                     "command again") from None

    @contextmanager
    def transaction(self) -> Iterator[CloudState]:
        """Read, let the caller change, write back, all under the lock."""
        with self.locked():
            state = self.read()
            yield state
            self.write(state)
