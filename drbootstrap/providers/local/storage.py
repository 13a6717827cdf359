"""Volumes, snapshots and elastic addresses of the local cloud (mixed into LocalNodeDriver).

A volume is a directory under <state>/local-cloud/volumes/, bind-mounted into the node at the
attach path (`device`; an EC2-style /dev/... name means /mnt/<volume id>). A snapshot is a copy.
An elastic address is a spare address of the network added to one node's eth0 at a time.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from libcloud.compute.base import Node, NodeDriver, StorageVolume, VolumeSnapshot
from libcloud.compute.drivers.ec2 import ElasticIP
from libcloud.compute.types import StorageVolumeState, VolumeSnapshotState

from drbootstrap.errors import NotFoundError, ProviderError
from drbootstrap.providers.local import mountns
from drbootstrap.providers.local.state import (
    AddressRecord,
    CloudState,
    NodeRecord,
    SnapshotRecord,
    VolumeRecord,
)

if TYPE_CHECKING:
    from drbootstrap.providers.local.netns import Plumbing
    from drbootstrap.providers.local.runtime import NodePaths
    from drbootstrap.providers.local.state import StateStore

NODE_PRIVATE_TREES = ("/run", "/tmp")  # mount points under these live in the node's tmpfs


class StorageMixin:
    """Expects the LocalNodeDriver attributes store, plumbing, network and the node helpers."""

    # What LocalNodeDriver provides, declared for the type checker.
    store: StateStore
    plumbing: Plumbing
    network: str

    if TYPE_CHECKING:
        def _require_prerequisites(self) -> None: ...
        def _paths(self, node_id: str) -> NodePaths: ...
        def _record_in(self, state: CloudState, node_id: str) -> NodeRecord: ...
        def _record(self, node_id: str) -> NodeRecord: ...
        def _allocate_address(self, state: CloudState, network: str) -> str: ...
        def _write_metadata(self, record: NodeRecord, user_data: str | None = None) -> None: ...

    # volumes -----------------------------------------------------------------------------
    def create_volume(self, size: int, name: str, location: Any = None,
                      snapshot: VolumeSnapshot | str | None = None, **ignored: Any) -> StorageVolume:
        volume_id = "vol-" + secrets.token_hex(9)[:17]
        directory = self._volume_dir(volume_id)
        snapshot_id = cast("str | None", getattr(snapshot, "id", snapshot))
        if snapshot_id:
            source = self._snapshot_dir(self._snapshot_record(snapshot_id).id)
            _copy_tree(source, directory)
        else:
            directory.mkdir(parents=True, mode=0o755)
        record = VolumeRecord(id=volume_id, name=name, size_gb=int(size),
                              from_snapshot=snapshot_id, created_at=time.time())
        with self.store.transaction() as state:
            state.volumes[volume_id] = record
        return self._to_volume(record)

    def list_volumes(self) -> list[StorageVolume]:
        return [self._to_volume(v) for v in self.store.read().volumes.values()]

    def attach_volume(self, node: Node | str, volume: StorageVolume | str,
                      device: str | None = None) -> bool:
        """Mount the volume into the node at `device` (a path; see the module docstring)."""
        self._require_prerequisites()
        node_id, volume_id = _id_of(node), _id_of(volume)
        target = device if device and not device.startswith("/dev/") else f"/mnt/{volume_id}"
        with self.store.transaction() as state:
            record = self._node_in(state, node_id)
            volume_record = self._volume_in(state, volume_id)
            if volume_record.node_id:
                raise ProviderError(f"local cloud: volume {volume_id} is already attached to "
                                    f"{volume_record.node_id}", hint="detach it first")
            created = not target.startswith(NODE_PRIVATE_TREES) and not Path(target).exists()
            mountns.attach_into_namespace(self._paths(record.id).mnt_file,
                                          self._volume_dir(volume_id), target)
            volume_record.node_id, volume_record.mount_path = record.id, target
            volume_record.created_mount_path = created
        return True

    def detach_volume(self, volume: StorageVolume | str) -> bool:
        self._require_prerequisites()
        with self.store.transaction() as state:
            record = self._volume_in(state, _id_of(volume))
            if record.node_id and record.node_id in state.nodes and record.mount_path:
                mountns.detach_from_namespace(self._paths(record.node_id).mnt_file, record.mount_path)
            forget_attachment(record)
        return True

    def destroy_volume(self, volume: StorageVolume | str) -> bool:
        volume_id = _id_of(volume)
        with self.store.transaction() as state:
            record = self._volume_in(state, volume_id)
            if record.node_id:
                raise ProviderError(f"local cloud: volume {volume_id} is attached to {record.node_id}",
                                    hint="detach it before destroying it")
            del state.volumes[volume_id]
        shutil.rmtree(self._volume_dir(volume_id), ignore_errors=True)
        return True

    def create_volume_snapshot(self, volume: StorageVolume | str, name: str | None = None,
                               ex_metadata: dict[str, str] | None = None, **ignored: Any) -> VolumeSnapshot:
        """A snapshot is a full copy of the volume's directory (a reflink where the file system
        can), taken now, tagged with `ex_metadata` as EC2's CreateSnapshot tags it."""
        volume_record = self._volume_in(self.store.read(), _id_of(volume))
        snapshot_id = "snap-" + secrets.token_hex(9)[:17]
        _copy_tree(self._volume_dir(volume_record.id), self._snapshot_dir(snapshot_id))
        record = SnapshotRecord(id=snapshot_id, name=name or snapshot_id, volume_id=volume_record.id,
                                size_gb=volume_record.size_gb, created_at=time.time(), tags=dict(ex_metadata or {}),
                                size_bytes=_tree_bytes(self._snapshot_dir(snapshot_id)))
        with self.store.transaction() as state:
            state.snapshots[snapshot_id] = record
        return self._to_snapshot(record)

    def _tag_snapshot(self, snapshot_id: str, tags: dict[str, str]) -> bool:
        with self.store.transaction() as state:
            record = state.snapshots.get(snapshot_id)
            if record is None:
                raise NotFoundError(f"local cloud: no snapshot {snapshot_id}")
            record.tags.update(tags)
        return True

    def list_volume_snapshots(self, volume: StorageVolume | str) -> list[VolumeSnapshot]:
        volume_id = _id_of(volume)
        return [s for s in self.list_snapshots() if s.extra["volume_id"] == volume_id]

    def list_snapshots(self) -> list[VolumeSnapshot]:
        return [self._to_snapshot(s) for s in self.store.read().snapshots.values()]

    def destroy_volume_snapshot(self, snapshot: VolumeSnapshot | str) -> bool:
        snapshot_id = _id_of(snapshot)
        with self.store.transaction() as state:
            if state.snapshots.pop(snapshot_id, None) is None:
                raise NotFoundError(f"local cloud: no snapshot {snapshot_id}")
        shutil.rmtree(self._snapshot_dir(snapshot_id), ignore_errors=True)
        return True

    # elastic addresses -------------------------------------------------------------------
    def ex_allocate_address(self, domain: str = "vpc") -> ElasticIP:
        with self.store.transaction() as state:
            address = self._allocate_address(state, self.network)
            record = AddressRecord(address=address, network=self.network,
                                   allocation_id="eipalloc-" + secrets.token_hex(9)[:17])
            state.addresses[address] = record
        return _to_elastic_ip(record)

    def ex_describe_all_addresses(self, only_associated: bool = False) -> list[ElasticIP]:
        records = self.store.read().addresses.values()
        return [_to_elastic_ip(a) for a in records if a.node_id or not only_associated]

    def ex_associate_address_with_node(self, node: Node | str, elastic_ip: ElasticIP | str,
                                       domain: str | None = None) -> bool:
        """Move the address to this node's eth0 (from whichever node held it)."""
        self._require_prerequisites()
        address = _id_of(elastic_ip, "ip")
        with self.store.transaction() as state:
            record = self._address_in(state, address)
            node_record = self._node_in(state, _id_of(node))
            previous = state.nodes.get(record.node_id) if record.node_id else None
            if previous is not None:
                self.plumbing.remove_address(previous.index, record.network, address)
            self.plumbing.add_address(node_record.index, record.network, address)
            record.node_id = node_record.id
            self.plumbing.forget_neighbour(record.network, address,
                                           [n.index for n in state.nodes.values()])
        for changed in {node_record.id, previous.id if previous else None} - {None}:
            self._write_metadata(self._record(cast(str, changed)))  # None was taken out above
        return True

    def ex_disassociate_address(self, elastic_ip: ElasticIP | str, domain: str | None = None) -> bool:
        self._require_prerequisites()
        address = _id_of(elastic_ip, "ip")
        with self.store.transaction() as state:
            record = self._address_in(state, address)
            holder = state.nodes.get(record.node_id) if record.node_id else None
            if holder is not None:
                self.plumbing.remove_address(holder.index, record.network, address)
            record.node_id = None
        if holder is not None:
            self._write_metadata(self._record(holder.id))
        return True

    def ex_release_address(self, elastic_ip: ElasticIP | str, domain: str | None = None) -> bool:
        address = _id_of(elastic_ip, "ip")
        if self._address_in(self.store.read(), address).node_id:
            self.ex_disassociate_address(address)
        with self.store.transaction() as state:
            state.addresses.pop(address, None)
        return True

    # shared helpers ----------------------------------------------------------------------
    def _release_node_resources(self, state: CloudState, node: NodeRecord) -> None:
        """A destroyed node's volumes become available again; its elastic addresses stay allocated."""
        for volume in state.volumes.values():
            if volume.node_id == node.id:
                forget_attachment(volume)
        for address in state.addresses.values():
            if address.node_id == node.id:
                address.node_id = None

    def _volume_dir(self, volume_id: str) -> Path:
        return self.store.root / "volumes" / volume_id

    def _snapshot_dir(self, snapshot_id: str) -> Path:
        return self.store.root / "snapshots" / snapshot_id

    def _node_in(self, state: CloudState, node_id: str) -> NodeRecord:
        return self._record_in(state, node_id)

    def _volume_in(self, state: CloudState, volume_id: str) -> VolumeRecord:
        try:
            return state.volumes[volume_id]
        except KeyError:
            raise NotFoundError(f"local cloud: no volume {volume_id}") from None

    def _snapshot_record(self, snapshot_id: str) -> SnapshotRecord:
        try:
            return self.store.read().snapshots[snapshot_id]
        except KeyError:
            raise NotFoundError(f"local cloud: no snapshot {snapshot_id}") from None

    def _address_in(self, state: CloudState, address: str) -> AddressRecord:
        try:
            return state.addresses[address]
        except KeyError:
            raise NotFoundError(f"local cloud: no elastic address {address}",
                                hint="allocate one with ex_allocate_address") from None

    def _to_volume(self, record: VolumeRecord) -> StorageVolume:
        state = StorageVolumeState.INUSE if record.node_id else StorageVolumeState.AVAILABLE
        return StorageVolume(id=record.id, name=record.name, size=record.size_gb, driver=cast(NodeDriver, self),
                             state=state, extra={"path": str(self._volume_dir(record.id)),
                                                 "node_id": record.node_id, "instance_id": record.node_id,
                                                 "mount_path": record.mount_path,
                                                 "snapshot_id": record.from_snapshot})

    def _to_snapshot(self, record: SnapshotRecord) -> VolumeSnapshot:
        return VolumeSnapshot(id=record.id, driver=cast(NodeDriver, self), size=record.size_gb, name=record.name,
                              # libcloud annotates VolumeSnapshot's state as a StorageVolumeState
                              state=VolumeSnapshotState.AVAILABLE,  # type: ignore[arg-type]
                              created=datetime.fromtimestamp(record.created_at, UTC),
                              extra={"volume_id": record.volume_id, "tags": dict(record.tags),
                                     "size_bytes": record.size_bytes,
                                     "path": str(self._snapshot_dir(record.id))})


def _id_of(resource: object, attribute: str = "id") -> str:
    """A libcloud object's id (or address), or the id itself when the caller passed a string."""
    return cast(str, getattr(resource, attribute, resource))


def forget_attachment(volume: VolumeRecord) -> None:
    if volume.created_mount_path and volume.mount_path:
        try:
            Path(volume.mount_path).rmdir()  # only if empty: we made it for the mount
        except OSError:
            pass
    volume.node_id = volume.mount_path = None
    volume.created_mount_path = False


def _copy_tree(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(destination)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise ProviderError(f"local cloud: copying {source} failed: {result.stderr.strip()}")


def _tree_bytes(root: Path) -> int:
    """The bytes the regular files under `root` hold (links not followed)."""
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.lstat().st_size
    return total


def _to_elastic_ip(record: AddressRecord) -> ElasticIP:
    return ElasticIP(record.address, "vpc", record.node_id,
                     extra={"allocation_id": record.allocation_id, "network": record.network})
