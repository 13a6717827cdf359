"""LocalNodeDriver pieces that need no root: registry, naming, state, catalogue, prerequisites."""

import json
import threading
from pathlib import Path

import pytest
from libcloud.compute.providers import get_driver

from drbootstrap.errors import NotFoundError, PrerequisiteError
from drbootstrap.providers import get_node_driver, node_driver_class
from drbootstrap.providers.local import LocalNodeDriver, netns, runtime
from drbootstrap.providers.local.state import NodeRecord, StateStore, name_prefix


def test_local_is_a_libcloud_provider_like_any_other(tmp_path):
    assert node_driver_class("local") is LocalNodeDriver
    assert get_driver("local") is LocalNodeDriver
    driver = get_node_driver("local", state_dir=tmp_path, network="10.220.0.0/24")
    assert isinstance(driver, LocalNodeDriver) and driver.network == "10.220.0.0/24"
    assert node_driver_class("ec2").__name__ == "EC2NodeDriver"


def test_images_are_the_directories_of_images_dir_and_sizes_are_fixed(tmp_path):
    (tmp_path / "images" / "master").mkdir(parents=True)
    (tmp_path / "images" / "worker").mkdir()
    (tmp_path / "images" / "README").write_text("not an image")
    driver = LocalNodeDriver(state_dir=tmp_path / "s", images_dir=tmp_path / "images")
    assert [i.id for i in driver.list_images()] == ["master", "worker"]
    assert [s.id for s in driver.list_sizes()] == ["small", "medium", "large"]


def test_names_fit_link_limits_and_differ_per_state_dir(tmp_path):
    a, b = netns.Plumbing(name_prefix(tmp_path / "a")), netns.Plumbing(name_prefix(tmp_path / "b"))
    assert a.prefix != b.prefix
    for plumbing in (a, b):
        assert len(plumbing.host_veth(99999)) <= 15
        assert len(plumbing.bridge_name("10.213.0.0/24")) <= 15
    assert a.bridge_name("10.213.0.0/24") != a.bridge_name("10.214.0.0/24")


def test_addresses_start_at_eleven_and_the_host_holds_the_first():
    assert netns.gateway_address("10.213.0.0/24") == "10.213.0.1"
    assert str(netns.first_node_address("10.213.0.0/24")) == "10.213.0.11"
    assert str(netns.first_node_address("10.213.0.0/28")) == "10.213.0.2"


def test_state_survives_a_round_trip_and_concurrent_transactions_do_not_lose_updates(tmp_path):
    store = StateStore(tmp_path)

    def bump():
        for _ in range(20):
            with store.transaction() as state:
                state.next_index += 1

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.read().next_index == 81
    with store.transaction() as state:
        state.nodes["i-1"] = NodeRecord(id="i-1", name="a", index=1, network="10.213.0.0/24",
                                        address="10.213.0.11", image="worker", size="small",
                                        hostname="ip-10-213-0-11", tags={"role": "db"})
    assert store.read().nodes["i-1"].tags == {"role": "db"}
    assert json.loads(store.path.read_text())["version"] == 1


def test_not_root_is_a_prerequisite_error_that_says_how_to_fix(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(PrerequisiteError, match="needs root") as caught:
        netns.check_prerequisites()
    assert "sudo" in str(caught.value)


def test_missing_programs_are_named(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns, "_which", lambda name: None if name == "nsenter" else "/bin/x")
    with pytest.raises(PrerequisiteError, match="nsenter"):
        netns.check_prerequisites()


def test_overlapping_network_names_the_address_and_interface(monkeypatch):
    monkeypatch.setattr(netns, "host_ipv4_addresses", lambda: [("eth9", "10.213.0.77/16")])
    with pytest.raises(PrerequisiteError, match=r"10\.213\.0\.77/16 on interface eth9"):
        netns.Plumbing("dabcdef").ensure_bridge("10.213.5.0/24")


def test_unknown_node_and_image_are_not_found(tmp_path, monkeypatch):
    driver = LocalNodeDriver(state_dir=tmp_path, images_dir=tmp_path / "images")
    monkeypatch.setattr(netns, "check_prerequisites", lambda: None)
    with pytest.raises(NotFoundError, match="i-nothere"):
        driver.reboot_node("i-nothere")
    with pytest.raises(NotFoundError, match="no image 'worker'"):
        driver.create_node("a", "small", "worker")


def test_boot_script_mounts_private_trees_and_runs_image_then_user_data(tmp_path):
    paths = runtime.NodePaths(tmp_path, tmp_path / "ns", "i-abc")
    script = runtime.boot_script(paths, Path("/images/worker"),
                                 [runtime.Mount(tmp_path / "vol", "/srv/db")],
                                 ["/run/drb-cloud/user-data"], first_boot=True)
    for expected in ("tmpfs /run", "tmpfs /tmp", "bind_etc 5 /etc/hosts", "/srv/db",
                     "/run/drb-image/boot.sh", "/run/drb-cloud/user-data", "DRB_CLOUD_FIRST_BOOT=1",
                     "/proc/sys/kernel/hostname"):
        assert expected in script
    assert script.index("boot.sh") < script.index("/run/drb-cloud/user-data 9>&-")


def test_only_outermost_host_paths_under_tmp_or_run_are_bound_back_into_nodes(tmp_path):
    from pathlib import Path

    from drbootstrap.providers.local.runtime import paths_hidden_by_private_trees

    checkout = Path("/tmp/clone-xyz")
    hidden = paths_hidden_by_private_trees(
        [checkout, checkout / "images", checkout / ".venv", Path("/run/drb-state"), Path("/usr"), Path("/srv/x")]
    )
    assert hidden == [Path("/run/drb-state"), checkout]


def test_boot_script_binds_kept_paths_back_after_covering_tmp(tmp_path):
    from pathlib import Path

    from drbootstrap.providers.local import runtime

    paths = runtime.NodePaths(tmp_path, tmp_path / "ns", "i-0123456789abcdef0")
    script = runtime.boot_script(paths, tmp_path, [], [], True, keep_visible=[Path("/tmp/clone-xyz")])
    cover = script.index("tmpfs /tmp")
    rebind = script.index("bind_fd 10 /tmp/clone-xyz rw")
    assert rebind > cover
    assert "10</tmp/clone-xyz" in script


def test_release_if_idle_keeps_a_cloud_that_still_holds_a_snapshot(tmp_path, monkeypatch):
    from drbootstrap.providers.local.driver import LocalNodeDriver
    from drbootstrap.providers.local.state import SnapshotRecord

    driver = LocalNodeDriver(state_dir=tmp_path, network="10.250.9.0/24", images_dir=tmp_path)
    cleaned = []
    monkeypatch.setattr(driver, "ex_cleanup", lambda: cleaned.append(True))
    with driver.store.locked():
        state = driver.store.read()
        state.snapshots["snap-1"] = SnapshotRecord("snap-1", "db-data", "vol-1", 1)
        driver.store.write(state)
    assert driver.ex_release_if_idle() is False
    assert cleaned == []


def test_release_if_idle_cleans_up_a_cloud_that_holds_nothing(tmp_path, monkeypatch):
    from drbootstrap.providers.local.driver import LocalNodeDriver

    driver = LocalNodeDriver(state_dir=tmp_path, network="10.250.9.0/24", images_dir=tmp_path)
    cleaned = []
    monkeypatch.setattr(driver, "ex_cleanup", lambda: cleaned.append(True))
    assert driver.ex_release_if_idle() is True
    assert cleaned == [True]
