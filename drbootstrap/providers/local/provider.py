"""The `local` provider: the embedded cloud (LocalNodeDriver) as the executor sees it. Its nodes
have one address (the bridge's); their boot progress is in extra["boot"]; volumes by name; backups
are the local cloud's snapshot copies, tagged (drbootstrap.providers.volumes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from libcloud.compute.base import Node, NodeDriver
from libcloud.compute.types import NodeState

from drbootstrap.providers.base import Provider
from drbootstrap.providers.settings import RateSettings
from drbootstrap.providers.values import BootProgress, Teardown
from drbootstrap.providers.volumes import NamedVolumeBackups

if TYPE_CHECKING:
    from drbootstrap.providers.local.driver import LocalNodeDriver


class LocalProvider(NamedVolumeBackups, Provider):
    nodes_share_this_host = True
    broker_tls_by_default = False  # a private bridge on this machine; `tls: true` asks for stomp+ssl
    default_rate = RateSettings(per_second=20, burst=40)  # its API is this machine's state directory

    @classmethod
    def driver_family(cls, name: str) -> type[NodeDriver] | None:
        from drbootstrap.providers.local.driver import LocalNodeDriver

        return LocalNodeDriver

    def new_driver(self) -> NodeDriver:
        from drbootstrap.providers import node_driver_class
        from drbootstrap.providers.local.driver import LocalNodeDriver
        from drbootstrap.providers.settings import driver_class_override

        # `extra: driver_class` substitutes a LocalNodeDriver subclass (a test double, a patched driver).
        driver_class = driver_class_override(self.settings, LocalNodeDriver) or node_driver_class("local")
        return driver_class(state_dir=self.scope.state_dir, network=str(self.settings.network))

    def copy_backup(self, snapshot_id: str, to_region: str) -> str:
        """The local cloud's snapshots are one store every site sees: the copy is the backup itself
        (after checking it is one of the environment's)."""
        from drbootstrap.backups.catalog import ENVIRONMENT_TAG
        from drbootstrap.errors import ProviderError
        from drbootstrap.providers.volumes import _our_snapshot, snapshot_tags

        owner = snapshot_tags(_our_snapshot(self, snapshot_id)).get(ENVIRONMENT_TAG)
        if owner != self.backups_environment:
            raise ProviderError(f"snapshot {snapshot_id} is a backup of {owner!r}, not {self.backups_environment!r}: "
                                "refused to copy it", hint="drbootstrap copies only the environment's own backups")
        return snapshot_id

    def driver(self) -> LocalNodeDriver:
        """This thread's driver: a LocalNodeDriver (new_driver builds one through libcloud's registry)."""
        return cast("LocalNodeDriver", super().driver())

    def needs_replacing(self, node: Node) -> bool:
        # Its launch was killed before the cloud started booting it: the local cloud never finishes such a node.
        return node.extra.get("boot_count") == 0

    def boot_finished(self, node: Node) -> BootProgress:
        from drbootstrap.providers.local.driver import BOOT_FINISHED

        if node.state == NodeState.ERROR:
            return BootProgress(True, failed=True, detail=str(node.extra.get("error") or "the cloud reports ERROR"))
        return BootProgress(node.state == NodeState.RUNNING and node.extra.get("boot") == BOOT_FINISHED,
                            detail=str(node.extra.get("boot") or node.state))

    def console_text(self, node: Node) -> str:
        from pathlib import Path

        from drbootstrap.errors import ProviderError

        console_log = (node.extra or {}).get("console_log")
        if console_log and Path(console_log).is_file():
            return Path(console_log).read_text(errors="replace")  # the local cloud's serial console
        raise ProviderError(f"node {node.name} has no console log yet", hint="wait for it to boot, then retry")

    def controller_address_for_nodes(self) -> str | None:
        from drbootstrap.providers.local.netns import gateway_address

        # this host's address on the nodes' bridge, made now when no node is up yet (a master fetching
        # its state at its first boot, before the bridge would otherwise exist)
        self.driver().plumbing.ensure_bridge(str(self.settings.network))
        return gateway_address(str(self.settings.network))

    def drill_isolation(self, seed: str) -> dict[str, str]:
        """A drill gets its own bridge: a subnet no interface here and no node of this local cloud uses."""
        from drbootstrap.providers.local.subnets import free_drill_network

        return {"network": free_drill_network(seed, str(self.settings.network), self.driver())}

    def destroy_environment(self, owned_ids: frozenset[str] = frozenset()) -> Teardown:
        result = super().destroy_environment(owned_ids)
        from drbootstrap.providers.local.driver import LocalNodeDriver
        from drbootstrap.providers.local.subnets import release_unused_bridge

        driver = self.driver()
        # The bridge of this environment's network goes when nothing uses it (another network's stays).
        bridge = release_unused_bridge(driver, str(self.settings.network)) \
            if isinstance(driver, LocalNodeDriver) else None
        if bridge:
            result.resources.append(f"bridge {bridge} ({self.settings.network})")
        driver.ex_release_if_idle()  # leave no bridge or process behind
        return result
