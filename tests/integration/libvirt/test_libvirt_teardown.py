"""Teardown of a half-made libvirt environment, on a real libvirtd: running domains, one stopped,
a volume attached, the files of a launch cut short before its domain was defined, the network; one
destroy_environment leaves no domain, disk, seed, volume, network, bridge, file or QEMU process."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from drbootstrap.providers.nodes import LaunchRequest
from drbootstrap.providers.registry import create_provider
from drbootstrap.providers.settings import ProviderSettings
from drbootstrap.providers.values import EnvironmentScope
from tests.integration.libvirt.conftest import DOMAIN_TYPE, free_subnet, leftovers

pytestmark = [pytest.mark.integration]
NAME = "virthalf"


@pytest.fixture
def blank_image() -> Iterator[Path]:
    """An empty qcow2 QEMU's own user can read: it boots nothing, the domain just runs."""
    directory = Path(tempfile.mkdtemp(prefix="drb-virt-image-", dir="/var/tmp"))
    directory.chmod(0o755)
    image = directory / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1G"], check=True)
    image.chmod(0o644)
    yield image
    shutil.rmtree(directory, ignore_errors=True)


def test_a_half_made_environment_is_torn_down_whole(libvirtd, blank_image: Path, tmp_path: Path):
    image = blank_image
    settings = ProviderSettings(name="libvirt", uri="qemu:///system", network=free_subnet(),
                                extra={"domain_type": DOMAIN_TYPE})
    provider = create_provider(settings, EnvironmentScope(NAME, tmp_path / "state", tmp_path / "operator.key"))
    try:
        provider.prepare_environment()
        nodes = [provider.launch(LaunchRequest(environment=NAME, hostname=h, role="w", image_id=str(image),
                                               size_id="1x256", user_data="#cloud-config\n"))
                 for h in ("db01", "web01")]
        assert provider.addresses(nodes[0]).private != provider.addresses(nodes[1]).private
        driver = provider.driver()
        volume = driver.create_volume(1, f"drb-{NAME}-db01-data")
        driver.attach_volume(nodes[0], volume)
        assert any(v.extra["node_id"] == nodes[0].id for v in driver.list_volumes())
        driver.connection.lookupByUUIDString(nodes[1].id).destroy()  # one stopped, still defined
        (provider.storage_dir / f"drb-{NAME}-mail01").mkdir()  # a launch cut short before defineXML
        (provider.storage_dir / f"drb-{NAME}-mail01" / "seed.iso").write_bytes(b"")
        assert "libvirt network" in provider.describe_resources()[0]

        teardown = provider.destroy_environment()

        assert teardown.destroyed == ["db01", "web01"] and teardown.volumes == [f"drb-{NAME}-db01-data"]
        assert leftovers(NAME) == []
        assert provider.destroy_environment().destroyed == []  # again: nothing, no error
    finally:
        provider.destroy_environment()
        assert leftovers(NAME) == []
