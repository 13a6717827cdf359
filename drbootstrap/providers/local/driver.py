"""LocalNodeDriver: the libcloud NodeDriver whose nodes are namespaces on this machine (`local`)."""

from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

from libcloud.compute.base import Node, NodeDriver, NodeImage, NodeSize, VolumeSnapshot
from libcloud.compute.types import NodeState

from drbootstrap import paths as drb_paths
from drbootstrap.errors import NotFoundError, ProviderError, WaitTimeoutError
from drbootstrap.paths import write_private_file
from drbootstrap.providers.local import cloudinit, netns, runtime
from drbootstrap.providers.local.state import CloudState, NodeRecord, StateStore, name_prefix
from drbootstrap.providers.local.storage import StorageMixin
from drbootstrap.providers.nodes import node_id

SIZES = {"small": (512, 1), "medium": (2048, 2), "large": (8192, 4)}  # name -> (ram MB, vcpus)
LAUNCH_GRACE_SECONDS = 15.0
# A node's extra["boot"]: its boot script and user-data still run, have finished, or failed.
BOOTING, BOOT_FINISHED, BOOT_FAILED = "booting", "finished", "failed"


class LocalNodeDriver(StorageMixin, NodeDriver):
    """Nodes are network + UTS + mount namespaces on a bridge; see the package docstring."""

    type = "local"
    name = "drbootstrap local cloud"
    website = "https://github.com/drbootstrap/drbootstrap"
    features = {"create_node": []}

    def __init__(self, key: str = "local", secret: str | None = None, *, state_dir: Path | None = None,
                 network: str = "10.213.0.0/24", images_dir: Path | None = None, **kwargs: Any) -> None:
        super().__init__(key=key, secret=secret)
        self.state_dir = Path(state_dir) if state_dir else drb_paths.default_state_dir()
        self.network = str(ipaddress.ip_network(network))
        self.images_dir = Path(images_dir) if images_dir else drb_paths.project_root() / "images"
        self.store = StateStore(self.state_dir)
        self.prefix = name_prefix(self.state_dir)
        self.plumbing = netns.Plumbing(self.prefix)
        self._checked = False
        self._check_lock = threading.Lock()

    # catalogue ---------------------------------------------------------------------------
    def list_images(self, location: Any = None, ex_owner: Any = None) -> list[NodeImage]:
        if not self.images_dir.is_dir():
            return []
        return [NodeImage(id=d.name, name=d.name, driver=self, extra={"path": str(d)})
                for d in sorted(self.images_dir.iterdir()) if d.is_dir()]

    def list_sizes(self, location: Any = None) -> list[NodeSize]:
        return [NodeSize(id=name, name=name, ram=ram, disk=1, bandwidth=None, price=0.0,
                         driver=self, extra={"cpu": cpus}) for name, (ram, cpus) in SIZES.items()]

    def list_locations(self) -> list:
        return []

    # nodes -------------------------------------------------------------------------------
    # Its own ex_ options where NodeDriver has location and auth, as libcloud's drivers do; passed by keyword.
    def create_node(self, name: str, size: NodeSize | str, image: NodeImage | str,  # type: ignore[override]
                    ex_userdata: str | None = None, ex_metadata: dict[str, str] | None = None,
                    ex_clienttoken: str | None = None, **ignored: Any) -> Node:
        """Launch a node: address, metadata, namespaces, then boot (returns while it boots)."""
        self._require_prerequisites()
        image_id = getattr(image, "id", image)
        image_dir = self.images_dir / str(image_id)
        if not image_dir.is_dir():
            raise NotFoundError(f"local cloud: no image {image_id!r} in {self.images_dir}",
                                hint="add a directory with a boot.sh there, or pick another image")
        size_id = str(getattr(size, "id", size))
        if size_id not in SIZES:
            raise NotFoundError(f"local cloud: no size {size_id!r}", hint=f"use one of {', '.join(SIZES)}")
        kind = cloudinit.user_data_kind(ex_userdata)
        # cast: user-data of the cloud-config kind is a non-empty text
        config = cloudinit.parse_cloud_config(cast(str, ex_userdata)) if kind == "cloud-config" else None

        with self.store.transaction() as state:
            if ex_clienttoken:
                for existing in state.nodes.values():
                    if existing.client_token == ex_clienttoken:
                        return self._to_node(existing)
            self._prepare_host(state)
            address = self._allocate_address(state, self.network)
            index, state.next_index = state.next_index, state.next_index + 1
            record = NodeRecord(
                id="i-" + secrets.token_hex(9)[:17], name=name, index=index, network=self.network,
                address=address, image=str(image_id), size=size_id,
                hostname="ip-" + address.replace(".", "-"), tags=dict(ex_metadata or {}),
                client_token=ex_clienttoken, user_data_kind=kind, created_at=time.time(),
                image_dir=str(image_dir.resolve()),
            )
            state.nodes[record.id] = record  # committed first, so a crash mid-launch is cleanable
            anchor_pid = state.anchor_pid
        try:
            self._write_node_files(record, ex_userdata, config, anchor_pid)
            self.plumbing.create_node_network(record.index, record.network, [record.address])
            self._boot(record, first_boot=True)
        except Exception:
            self._teardown(record)
            with self.store.transaction() as state:
                state.nodes.pop(record.id, None)
            raise
        return self._to_node(self._set(record.id, phase="boot", boot_count=1, launched_at=time.time()))

    def list_nodes(self, ex_node_ids: list[str] | None = None) -> list[Node]:
        state = self.store.read()
        records = [r for r in state.nodes.values() if not ex_node_ids or r.id in ex_node_ids]
        return [self._to_node(r, state) for r in sorted(records, key=lambda r: r.index)]

    def ex_get_node(self, node_id: str) -> Node:
        return self._to_node(self._record(node_id))

    def reboot_node(self, node: Node | str) -> bool:
        """Stop every process of the node (found by network namespace), then boot it again. Under
        the node's lock: a destroy waits for a reboot in flight (the in-node reboot helper is a
        process of its own), and a reboot of a node destroyed meanwhile finds it gone."""
        self._require_prerequisites()
        with runtime.node_lock(self.store.root, _node_id(node)):
            if self._record(_node_id(node)).phase in ("destroying", "stopped", "stopping"):
                raise NotFoundError(f"local cloud: node {_node_id(node)} is being destroyed or is stopped")
            record = self._set(_node_id(node), phase="rebooting")
            try:
                runtime.stop_processes(self._netns_inode(record))
                self._boot(record, first_boot=False)
            finally:  # a failed boot shows as ERROR (with its console), never as rebooting forever
                self._set(record.id, phase="boot", boot_count=record.boot_count + 1,
                          launched_at=time.time())
        return True

    def stop_node(self, node: Node | str) -> bool:
        """Stop every process of the node and leave it STOPPED (a fenced site); its files and
        volumes stay until it is destroyed."""
        self._require_prerequisites()
        with runtime.node_lock(self.store.root, _node_id(node)):
            record = self._set(_node_id(node), phase="stopping")
            runtime.stop_processes(self._netns_inode(record))
            self._set(record.id, phase="stopped")
        return True

    def destroy_node(self, node: Node | str) -> bool:
        """Stop the node's processes, release its namespaces, links, volumes and addresses."""
        self._require_prerequisites()
        with runtime.node_lock(self.store.root, _node_id(node), forget=True):
            record = self._set(_node_id(node), phase="destroying")
            self._teardown(record)
            with self.store.transaction() as state:
                self._release_node_resources(state, record)
                state.nodes.pop(record.id, None)
        return True

    def wait_until_running(self, nodes: list[Node], wait_period: float = 0.1, timeout: int = 600,
                           ssh_interface: str = "public_ips", force_ipv4: bool = True,
                           ex_list_nodes_kwargs: dict | None = None) -> list[tuple[Node, list[str]]]:
        """Like libcloud's (until every node runs, which is before its user-data has finished: see
        ex_wait_until_booted), but polls fast (state is local) and fails at once on a node in ERROR."""
        return self._wait(nodes, lambda n: n.state == NodeState.RUNNING, "running", wait_period, timeout,
                          ssh_interface)

    def ex_wait_until_booted(self, nodes: list[Node], wait_period: float = 0.1, timeout: int = 600,
                             ssh_interface: str = "public_ips") -> list[tuple[Node, list[str]]]:
        """Until every node's boot, its user-data included, has finished (extra["boot"])."""
        return self._wait(nodes, lambda n: n.extra.get("boot") == BOOT_FINISHED, "booted", wait_period,
                          timeout, ssh_interface)

    def _wait(self, nodes: list[Node], done: Any, word: str, wait_period: float, timeout: float,
              ssh_interface: str) -> list[tuple[Node, list[str]]]:
        wanted = {node_id(n) for n in nodes}
        deadline = time.monotonic() + timeout
        while True:
            current = [n for n in self.list_nodes() if n.id in wanted]
            missing = wanted - {n.id for n in current}
            if missing:
                raise NotFoundError(f"local cloud: nodes {sorted(missing)} no longer exist")
            failed = [n for n in current if n.state == NodeState.ERROR]
            if failed:
                raise ProviderError("; ".join(
                    f"node {n.name} ({n.id}) failed to boot: {n.extra.get('error')}" for n in failed),
                    hint=f"see {failed[0].extra['console_log']}")
            if all(done(n) for n in current):
                return [(n, getattr(n, ssh_interface)) for n in current]
            if time.monotonic() > deadline:
                pending = sorted(n.name for n in current if not done(n))
                raise WaitTimeoutError(f"local cloud: nodes {pending} not {word} after {timeout} s")
            time.sleep(wait_period)

    def ex_create_tags(self, resource: Node | VolumeSnapshot | str, tags: dict[str, str]) -> bool:
        """Add or replace tags on a node or a snapshot (as EC2's CreateTags does)."""
        if _node_id(resource).startswith("snap-"):
            return self._tag_snapshot(_node_id(resource), tags)
        with self.store.transaction() as state:
            self._record_in(state, _node_id(resource)).tags.update(tags)
        return True

    def ex_delete_tags(self, resource: Node | str, tags: dict[str, str] | list[str]) -> bool:
        with self.store.transaction() as state:
            record = self._record_in(state, _node_id(resource))
            for key in tags:
                record.tags.pop(key, None)
        return True

    def ex_enter_command(self, node: Node | str, argv: list[str]) -> list[str]:
        """The argv that runs `argv` inside the node's network, UTS and mount namespaces."""
        record = self._record(_node_id(node))
        paths = self._paths(record.id)
        return ["nsenter", f"--net={self.plumbing.netns_path(record.index)}",
                f"--uts={paths.uts_file}", f"--mount={paths.mnt_file}", "--wd=/", *argv]

    def ex_cleanup(self) -> None:
        """Remove every namespace, link, mount, process and state file of this state dir. Idempotent."""
        from drbootstrap.providers.local.cleanup import cleanup_everything

        cleanup_everything(self)

    def ex_release_if_idle(self) -> bool:
        """Remove the cloud's own plumbing (bridge, anchor, namespace-file mount, state) when it
        holds nothing any more: no node, volume, snapshot or address. Returns whether it did.

        Snapshots are kept data (restores come from them), so a cloud holding one stays.
        """
        state = self.store.read()
        if state.nodes or state.volumes or state.snapshots or state.addresses or state.reserved:
            return False
        self.ex_cleanup()
        return True

    # internals ---------------------------------------------------------------------------
    @property
    def _ns_dir(self) -> Path:
        return self.store.root / "ns"

    def _paths(self, node_id: str) -> runtime.NodePaths:
        return runtime.NodePaths(self.store.root, self._ns_dir, node_id)

    def _require_prerequisites(self) -> None:
        with self._check_lock:
            if not self._checked:
                netns.check_prerequisites()
                self._checked = True

    def _record_in(self, state: CloudState, node_id: str) -> NodeRecord:
        try:
            return state.nodes[node_id]
        except KeyError:
            raise NotFoundError(f"local cloud: no node {node_id} in {self.store.root}",
                                hint="`drbootstrap local status` lists the nodes") from None

    def _record(self, node_id: str) -> NodeRecord:
        return self._record_in(self.store.read(), node_id)

    def _set(self, node_id: str, **changes: Any) -> NodeRecord:
        with self.store.transaction() as state:
            record = self._record_in(state, node_id)
            for key, value in changes.items():
                setattr(record, key, value)
        return record

    def _netns_inode(self, record: NodeRecord) -> int | None:
        return netns.namespace_inode(self.plumbing.netns_path(record.index))

    def _allocate_address(self, state: CloudState, network: str) -> str:
        used = state.used_addresses(network)
        net = ipaddress.ip_network(network)
        candidate = netns.first_node_address(network)
        while candidate in net and candidate != net.broadcast_address:
            if str(candidate) not in used:
                return str(candidate)
            candidate += 1
        raise ProviderError(f"local cloud: network {network} has no free address left",
                            hint="destroy nodes or release elastic addresses, or use a larger network")

    def _prepare_host(self, state: CloudState) -> None:
        """Namespace-file directory, bridge (with the overlap check) and anchor; cheap when ready."""
        if not runtime.is_mount_point(self._ns_dir):
            runtime.ensure_private_ns_dir(self._ns_dir)
        if not Path("/sys/class/net", self.plumbing.bridge_name(self.network)).exists():
            self.plumbing.ensure_bridge(self.network)
        self._ensure_anchor(state)

    def _ensure_anchor(self, state: CloudState) -> None:
        pid = state.anchor_pid
        own_net = netns.namespace_inode(Path("/proc/self/ns/net"))
        if pid and _cmdline(pid) == b"sleep\0infinity\0" and \
                netns.namespace_inode(Path(f"/proc/{pid}/ns/net")) == own_net:
            return
        state.anchor_pid = runtime.start_anchor()
        for record in state.nodes.values():  # the in-node reboot command reads this file
            anchor_file = self._paths(record.id).cloud / "host-anchor"
            if anchor_file.parent.is_dir():
                runtime.write_atomically(anchor_file, f"{state.anchor_pid}\n")

    def _write_node_files(self, record: NodeRecord, user_data: str | None,
                          config: cloudinit.CloudConfig | None, anchor_pid: int | None) -> None:
        paths = self._paths(record.id)
        (paths.cloud / "boot").mkdir(parents=True, exist_ok=True)
        paths.etc.mkdir(parents=True, exist_ok=True)
        (paths.etc / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n{record.address}\t{record.hostname}\n")
        (paths.etc / "resolv.conf").write_text("# drb local cloud: no resolver until user-data sets one\n")
        (paths.etc / "hostname").write_text(record.hostname + "\n")
        write_private_file(paths.cloud / "user-data", user_data or "")
        if record.user_data_kind == "script":
            (paths.cloud / "user-data").chmod(0o700)
        if config is not None:
            (paths.cloud / "boot" / "per-boot.sh").write_text(cloudinit.render_per_boot(config))
            write_private_file(paths.cloud / "boot" / "per-instance.sh", cloudinit.render_per_instance(config))
        runtime.write_atomically(paths.cloud / "host-anchor", f"{anchor_pid}\n")
        reboot = runtime.reboot_command_script(record.id, self.state_dir,
                                               f"{runtime.CLOUD_DIR_IN_NODE}/host-anchor")
        runtime.write_atomically(paths.cloud / "reboot", reboot, mode=0o755)
        paths.console_log.touch()
        self._write_metadata(record, user_data)

    def _write_metadata(self, record: NodeRecord, user_data: str | None = None) -> None:
        paths = self._paths(record.id)
        if user_data is None:
            user_data = (paths.cloud / "user-data").read_text()
        elastic = [a.address for a in self.store.read().addresses.values() if a.node_id == record.id]
        document = {
            "instance-id": record.id, "name": record.name, "hostname": record.hostname,
            "local-hostname": record.hostname, "local-ipv4": record.address,
            "public-ipv4": elastic[0] if elastic else record.address,
            "addresses": [record.address, *elastic], "elastic-addresses": elastic,
            "network": record.network, "gateway": netns.gateway_address(record.network),
            "image-id": record.image, "instance-type": record.size, "tags": record.tags,
            "user-data": user_data, "user-data-path": f"{runtime.CLOUD_DIR_IN_NODE}/user-data",
        }
        write_private_file(paths.cloud / "meta-data.json", json.dumps(document, indent=1) + "\n")

    def _boot(self, record: NodeRecord, first_boot: bool) -> None:
        cloud = runtime.CLOUD_DIR_IN_NODE
        steps = {
            "none": [],
            "script": [f"{cloud}/user-data"] if first_boot else [],
            "cloud-config": [f"sh {cloud}/boot/per-boot.sh"]
            + ([f"sh {cloud}/boot/per-instance.sh"] if first_boot else []),
        }[record.user_data_kind]
        state = self.store.read()
        mounts = [runtime.Mount(self._volume_dir(v.id), v.mount_path)
                  for v in state.volumes.values() if v.node_id == record.id and v.mount_path]
        paths = self._paths(record.id)
        script = runtime.boot_script(paths, Path(record.image_dir), mounts, steps, first_boot,
                                     keep_visible=self._host_paths_nodes_need())
        runtime.launch(paths, self.plumbing.netns_path(record.index), script)

    def _host_paths_nodes_need(self) -> list[Path]:
        """The checkout, images, state dir, Python environment and drbootstrap's own source (an
        editable install): nodes run drbootstrap from them, so they must not vanish behind the
        node's private /tmp or /run."""
        package_source = Path(drb_paths.__file__).resolve().parent.parent
        wanted = [drb_paths.project_root(), self.images_dir, self.state_dir, Path(sys.prefix), package_source]
        return runtime.paths_hidden_by_private_trees([p for p in wanted if p.exists()])

    def _teardown(self, record: NodeRecord) -> None:
        runtime.stop_processes(self._netns_inode(record))
        paths = self._paths(record.id)
        runtime.release_namespace_files(paths)
        self.plumbing.delete_node_network(record.index)
        for path in (paths.uts_file, paths.mnt_file):
            path.unlink(missing_ok=True)
        shutil.rmtree(paths.dir, ignore_errors=True)

    def _node_state(self, record: NodeRecord) -> tuple[NodeState, str, str | None]:
        """(libcloud state, boot progress, error). As on a real cloud, a node is RUNNING while its
        boot (image boot script, then user-data) still runs; the end of the boot is a separate
        signal (extra["boot"]: booting, finished). A boot that exits non-zero or dies is ERROR."""
        phase_states = {"creating": NodeState.PENDING, "rebooting": NodeState.REBOOTING,
                        "destroying": NodeState.STOPPING, "stopping": NodeState.STOPPING,
                        "stopped": NodeState.STOPPED}
        if record.phase in phase_states:
            return phase_states[record.phase], BOOTING, None
        paths = self._paths(record.id)
        netns_inode = self._netns_inode(record)
        if netns_inode is None:
            return NodeState.ERROR, BOOT_FAILED, (f"namespace {self.plumbing.netns_name(record.index)} is gone "
                                                  "(this machine rebooted?); destroy the node and launch again")
        outcome, status = runtime.boot_outcome(paths, netns_inode)
        if outcome == "done":
            if status == 0:
                return NodeState.RUNNING, BOOT_FINISHED, None
            return NodeState.ERROR, BOOT_FAILED, f"boot exited with status {status}: {runtime.console_tail(paths)}"
        if outcome == "booting" and (paths.boot_pid.exists()
                                     or time.time() - record.launched_at < LAUNCH_GRACE_SECONDS):
            return NodeState.RUNNING, BOOTING, None
        return NodeState.ERROR, BOOT_FAILED, f"boot stopped before finishing: {runtime.console_tail(paths)}"

    def _to_node(self, record: NodeRecord, state: CloudState | None = None) -> Node:
        state = state or self.store.read()
        node_state, boot, error = self._node_state(record)
        elastic = [a.address for a in state.addresses.values() if a.node_id == record.id]
        paths = self._paths(record.id)
        extra = {
            "instance_id": record.id, "tags": dict(record.tags), "namespace":
            self.plumbing.netns_name(record.index), "console_log": str(paths.console_log),
            "hostname": record.hostname, "image_id": record.image, "instance_type": record.size,
            "boot_count": record.boot_count, "boot": boot, "elastic_ips": elastic, "error": error,
            "metadata_path": str(paths.cloud / "meta-data.json"), "host_veth":
            self.plumbing.host_veth(record.index), "client_token": record.client_token,
        }
        return Node(id=record.id, name=record.name, state=node_state,
                    public_ips=elastic or [record.address], private_ips=[record.address],
                    driver=self, size=None, image=None, extra=extra,
                    created_at=None)


def _node_id(node: Node | VolumeSnapshot | str) -> str:
    return node if isinstance(node, str) else cast(str, node.id)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
