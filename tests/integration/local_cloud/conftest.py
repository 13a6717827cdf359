"""Fixtures for the local cloud's integration tests: a driver on a unique subnet and state dir,
torn down (processes, namespaces, links, mounts, state) even when a test fails."""

from __future__ import annotations

import pytest

from drbootstrap.providers.local import LocalNodeDriver
from tests.integration.local_cloud.support import IMAGES, free_network, leftovers, processes_of
from tests.support.prereq import require_binary, require_root


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """A LocalNodeDriver whose state dir is under /tmp (nodes get a private /tmp: must still work)."""
    require_root()
    require_binary("ip", "unshare", "nsenter", "setsid")
    driver = LocalNodeDriver(state_dir=tmp_path_factory.mktemp("local-cloud-state"),
                             network=free_network(), images_dir=IMAGES)
    try:
        yield driver
    finally:
        processes = processes_of(driver)
        driver.ex_cleanup()
        assert leftovers(driver, processes) == []
