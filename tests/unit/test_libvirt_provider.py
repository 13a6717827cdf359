"""The libvirt provider's pieces that need no libvirt daemon: its XML, seed, sizes, addresses, subnet
checks, and the one-line errors for an unreachable URI and a missing image."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drbootstrap.errors import PrerequisiteError, ProviderError
from drbootstrap.providers.libvirt import network as net
from drbootstrap.providers.libvirt.driver import (
    SIZES,
    Size,
    boot_files,
    image_disk,
    parse_size,
    resolve_image,
    volume_serial,
)
from drbootstrap.providers.libvirt.seed import seed_for
from drbootstrap.providers.libvirt.volumes import mount_script
from drbootstrap.providers.libvirt.xml import (
    DomainPlan,
    disk_xml,
    domain_facts,
    domain_xml,
    mac_for,
    network_is_isolated,
    network_subnet,
    network_xml,
)
from drbootstrap.providers.registry import provider_class
from drbootstrap.providers.settings import ProviderSettings
from drbootstrap.providers.values import EnvironmentScope, ImageRef, Preflight


def plan(**overrides: object) -> DomainPlan:
    values: dict = dict(name="drb-demo-db01", memory_mib=1024, vcpus=1, root_disk="/s/root.qcow2",
                        seed_iso="/s/seed.iso", console_log="/s/console.log", network="drb-demo",
                        mac=mac_for("demo", "db01"), address="10.9.0.10",
                        tags={"drbootstrap:environment": "demo", "drbootstrap:hostname": "db01"})
    values.update(overrides)
    return DomainPlan(**values)


def test_a_domain_reads_back_its_tags_address_disks_console_and_seed():
    facts = domain_facts(domain_xml(plan()))
    assert facts.tags == {"drbootstrap:environment": "demo", "drbootstrap:hostname": "db01"}
    assert facts.address == "10.9.0.10"
    assert facts.disks == {"vda": "/s/root.qcow2"}
    assert facts.console_log == "/s/console.log" and facts.seed_iso == "/s/seed.iso"


def test_a_domain_boots_its_kernel_directly_when_given_one_and_takes_its_type():
    xml = domain_xml(plan(kernel="/i/w.vmlinuz", initrd="/i/w.initrd", cmdline="root=/dev/vda", domain_type="qemu"))
    assert "type=\"qemu\"" in xml.split(">")[0] and "<kernel>/i/w.vmlinuz</kernel>" in xml
    assert "<cmdline>root=/dev/vda</cmdline>" in xml and "<boot" not in xml
    assert "<boot dev=\"hd\"" in domain_xml(plan())


def test_the_mac_is_stable_per_node_and_in_qemus_range():
    assert mac_for("demo", "db01") == mac_for("demo", "db01") != mac_for("demo", "web01")
    assert mac_for("demo", "db01").startswith("52:54:00:")


def test_the_network_is_isolated_without_dhcp_or_dns_and_the_host_takes_the_first_address():
    xml = network_xml("drb-demo", "drbv0123456789", "10.9.0.0/24")
    assert network_is_isolated(xml) and "<forward" not in xml and "<dhcp" not in xml
    assert '<dns enable="no"' in xml and 'address="10.9.0.1"' in xml
    assert network_subnet(xml) == "10.9.0.0/24"
    assert len(net.bridge_name("a-very-long-environment-name")) <= 15


def test_nodes_take_addresses_from_the_tenth_up_skipping_taken_ones():
    assert net.free_address("10.9.0.0/24", []) == "10.9.0.10"
    assert net.free_address("10.9.0.0/24", ["10.9.0.10", "10.9.0.11"]) == "10.9.0.12"
    with pytest.raises(ProviderError, match="no free address"):
        net.free_address("10.9.0.0/29", [])


def test_a_subnet_overlapping_an_interface_is_named():
    assert net.overlaps("10.9.0.0/24", [("eth0", "192.0.2.0/24")]) is None
    assert net.overlaps("10.9.0.0/24", [("br0", "10.0.0.0/8")]) == "br0 (10.0.0.0/8)"


def test_the_seed_gives_the_static_address_by_mac_and_the_hostname():
    seed = seed_for("drb-demo-db01-1", "db01", "52:54:00:aa:bb:cc", "10.9.0.10", "10.9.0.0/24", "#cloud-config\n")
    config = yaml.safe_load(seed.network_config())
    eth0 = config["ethernets"]["eth0"]
    assert eth0["match"] == {"macaddress": "52:54:00:aa:bb:cc"} and eth0["addresses"] == ["10.9.0.10/24"]
    assert "gateway4" not in eth0 and "routes" not in eth0  # nothing is routed off the isolated network
    assert yaml.safe_load(seed.meta_data()) == {"instance-id": "drb-demo-db01-1", "local-hostname": "db01"}


def test_sizes_are_named_or_written_out():
    assert parse_size("small") == SIZES["small"]
    assert parse_size("2x3072") == Size(2, 3072) and parse_size("2x3072x20") == Size(2, 3072, 20)
    with pytest.raises(ProviderError, match="not a libvirt size"):
        parse_size("t3.micro")


def test_direct_kernel_boot_files_are_found_beside_the_image(tmp_path: Path):
    image = tmp_path / "worker.qcow2"
    image.write_bytes(b"")
    assert boot_files(image).kernel is None
    (tmp_path / "worker.vmlinuz").write_bytes(b"k")
    (tmp_path / "worker.cmdline").write_text("root=LABEL=drbroot ro\n")
    boot = boot_files(image)
    assert boot.kernel == str(tmp_path / "worker.vmlinuz") and boot.initrd is None
    assert boot.cmdline.startswith("root=LABEL=drbroot ro") and "console=ttyS0" in boot.cmdline


def test_an_image_directory_boots_as_its_manifest_says(tmp_path: Path):
    import json

    (tmp_path / "disk.qcow2").write_bytes(b"")
    manifest = {"disk": "disk.qcow2", "kernel": "vmlinuz", "initrd": "initrd.img",
                "cmdline": "root=LABEL=drbroot ro console=ttyS0"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert image_disk(tmp_path) == tmp_path / "disk.qcow2"
    boot = boot_files(tmp_path)
    assert boot.kernel == str(tmp_path / "vmlinuz") and boot.initrd == str(tmp_path / "initrd.img")
    assert boot.cmdline == "root=LABEL=drbroot ro console=ttyS0"


def test_an_image_by_name_is_the_newest_the_image_build_made(tmp_path: Path):
    import os

    for name, mtime in (("worker-aaaa", 100), ("worker-bbbb", 200), ("master-cccc", 300)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
        os.utime(tmp_path / name / "manifest.json", (mtime, mtime))
    assert resolve_image("worker", tmp_path) == tmp_path / "worker-bbbb"
    assert resolve_image("/x/disk.qcow2", tmp_path) == Path("/x/disk.qcow2")
    assert resolve_image("nothing", tmp_path) == tmp_path / "nothing"


def test_volumes_are_found_by_serial_and_formatted_only_when_blank():
    serial = volume_serial("drb-demo-db01-data")
    assert len(serial) <= 20 and serial == volume_serial("drb-demo-db01-data")
    script = mount_script(serial, "/srv/db", "data")
    assert f"/dev/disk/by-id/virtio-{serial}" in script
    assert "blkid" in script and "|| mkfs.ext4" in script and "mountpoint -q /srv/db || mount /srv/db" in script
    assert f"<serial>{serial}</serial>" in disk_xml("/v.qcow2", "vdb", serial=serial)


def scope(tmp_path: Path) -> EnvironmentScope:
    return EnvironmentScope("demo", tmp_path, tmp_path / "operator.key")


def test_the_registry_serves_libvirt_with_its_own_class():
    assert provider_class("libvirt").__name__ == "LibvirtProvider"


def test_an_unreachable_uri_is_one_provider_error(tmp_path: Path):
    settings = ProviderSettings(name="libvirt", uri="qemu+unix:///system?socket=/nonexistent/sock",
                                network="10.9.0.0/24")
    provider = provider_class("libvirt")(settings, scope(tmp_path))
    with pytest.raises(ProviderError, match="is unreachable") as raised:
        provider.driver()
    assert "\n" not in str(raised.value)


def test_a_missing_image_is_refused_before_anything_is_made(tmp_path: Path):
    settings = ProviderSettings(name="libvirt", uri="qemu+unix:///system?socket=/nonexistent/sock",
                                network="10.9.0.0/24")
    provider = provider_class("libvirt")(settings, scope(tmp_path))
    missing = tmp_path / "nope.qcow2"
    with pytest.raises(PrerequisiteError, match="image .* not found"):
        provider.preflight(Preflight(images={"worker": ImageRef(id=str(missing))}))
    assert not list(tmp_path.iterdir())




def test_cloud_inits_final_line_counts_when_the_journal_prefixed_it():
    from drbootstrap.providers.base import boot_finished_in_console

    assert boot_finished_in_console("[  320.58] cloud-init[370]: Cloud-init v. 22.4.2 finished at Thu, 26 Nov 2026")
    assert boot_finished_in_console("Cloud-init v. 22.4.2 finished at Thu, 26 Nov 2026")
    assert not boot_finished_in_console("[  85.3] cloud-init[233]: Cloud-init v. 22.4.2 running 'init-local' at")


def test_a_domain_destroyed_while_listed_is_left_out():
    import libvirt

    from drbootstrap.providers.libvirt.driver import DrbLibvirtNodeDriver

    class Gone:
        def info(self):
            error = libvirt.libvirtError("Domain not found")
            error.err = (libvirt.VIR_ERR_NO_DOMAIN, 0, "Domain not found", 0, "", "", "", 0, 0)
            raise error

    class Here:
        def info(self):
            return [1, 0, 0, 1, 0]

        def XMLDesc(self, flags):
            return domain_xml(plan())

        def UUIDString(self):
            return "u-1"

        def name(self):
            return "drb-demo-db01"

    class Connection:
        def listAllDomains(self):
            return [Gone(), Here()]

    driver = DrbLibvirtNodeDriver.__new__(DrbLibvirtNodeDriver)
    driver.connection = Connection()
    assert [n.name for n in driver.list_nodes()] == ["drb-demo-db01"]
