"""The `local` provider: the embedded cloud (LocalNodeDriver) as the executor sees it. Its nodes
have one address (the bridge's); their boot progress is in extra["boot"]; volumes by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from libcloud.compute.base import Node, NodeDriver
from libcloud.compute.types import NodeState

from drbootstrap.providers.base import BootProgress, Provider, Teardown
from drbootstrap.providers.settings import RateSettings

if TYPE_CHECKING:
    from drbootstrap.providers.local.driver import LocalNodeDriver


class LocalProvider(Provider):
    nodes_share_this_host = True
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

    def destroy_environment(self, owned_ids: frozenset[str] = frozenset()) -> Teardown:
        result = super().destroy_environment(owned_ids)
        self.driver().ex_release_if_idle()  # leave no bridge or process behind
        return result
