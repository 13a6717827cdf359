"""The local cloud against real namespaces: isolation, reachability, reboot, volumes, addresses, cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from libcloud.compute.types import NodeState

from drbootstrap.errors import PrerequisiteError, ProviderError, WaitTimeoutError
from drbootstrap.providers.local import LocalNodeDriver, runtime
from tests.integration.local_cloud.support import (
    IMAGES,
    alive,
    ask_hostname,
    free_network,
    in_node,
    leftovers,
    processes_of,
    start_hostname_server,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trio(cloud):
    nodes = [cloud.create_node(f"n{i}", "small", "basic", ex_metadata={"role": f"r{i}"}) for i in range(3)]
    cloud.ex_wait_until_booted(nodes)
    return nodes


def _wait_for(condition, what: str, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_each_node_sees_only_its_own_hostname_address_and_files(cloud, trio):
    addresses = {n.private_ips[0] for n in trio}
    assert len(addresses) == 3
    for node in trio:
        address = node.private_ips[0]
        assert in_node(cloud, node, "hostname").strip() == "ip-" + address.replace(".", "-")
        shown = in_node(cloud, node, "ip -4 -o addr show | awk '{print $4}'").split()
        assert shown == ["127.0.0.1/8", f"{address}/24"]
        assert "default" not in in_node(cloud, node, "ip route")
        assert f"{address}\tip-" in in_node(cloud, node, "cat /etc/hosts")
        assert in_node(cloud, node, "cat /etc/hostname").strip() == node.extra["hostname"]
        meta = json.loads(in_node(cloud, node, "cat /run/drb-cloud/meta-data.json"))
        assert meta["instance-id"] == node.id and meta["local-ipv4"] == address
        assert meta["tags"] == node.extra["tags"]
    # private /run: each node has exactly its own daemon's pid file
    pid_files = {in_node(cloud, n, "cat /run/testd.pid").strip() for n in trio}
    assert len(pid_files) == 3
    # the boot environment names the metadata and carries nothing of the driver's environment
    daemon = pid_files.pop()
    assert sorted(os.listdir(f"/proc/{daemon}/fd")) == ["0", "1", "2"]  # no host file leaks in
    environ = Path(f"/proc/{daemon}/environ").read_bytes().split(b"\0")
    assert b"DRB_CLOUD_METADATA=/run/drb-cloud/meta-data.json" in environ
    assert not [v for v in environ if v.startswith(b"PYTEST_CURRENT_TEST=")]
    assert node.id.startswith("i-") and node.extra["tags"] == {"role": "r2"}


def test_nodes_reach_each_other_and_the_host_reaches_them_over_the_bridge(cloud, trio):
    first, second, third = trio
    start_hostname_server(cloud, first)
    assert ask_hostname(first.private_ips[0], cloud, from_node=second) == first.extra["hostname"]
    assert ask_hostname(first.private_ips[0], cloud, from_node=third) == first.extra["hostname"]
    assert ask_hostname(first.private_ips[0]) == first.extra["hostname"]


def test_reboot_restarts_processes_and_keeps_address_and_volumes(cloud, trio):
    node = trio[1]
    volume = cloud.create_volume(1, "keep")
    cloud.attach_volume(node, volume, "/tmp/data")
    in_node(cloud, node, "echo precious > /tmp/data/file; echo scratch > /tmp/scratch")
    old_daemon = int(in_node(cloud, node, "cat /run/testd.pid"))

    cloud.reboot_node(node)
    [(rebooted, _)] = cloud.ex_wait_until_booted([node])

    assert rebooted.private_ips == node.private_ips and rebooted.extra["boot_count"] == 2
    assert not alive(old_daemon)
    new_daemon = int(in_node(cloud, node, "cat /run/testd.pid"))
    assert new_daemon != old_daemon and alive(new_daemon)
    assert in_node(cloud, node, "cat /tmp/data/file").strip() == "precious"
    assert in_node(cloud, node, "cat /tmp/scratch", check=False) == ""  # /tmp is fresh each boot
    cloud.detach_volume(volume)
    cloud.destroy_volume(volume)


def test_the_in_node_reboot_command_reboots_its_own_node(cloud, trio):
    node = trio[2]
    old_daemon = int(in_node(cloud, node, "cat /run/testd.pid"))
    in_node(cloud, node, "/run/drb-cloud/reboot")
    _wait_for(lambda: cloud.ex_get_node(node.id).extra["boot_count"] == 2, "the in-node reboot")
    cloud.ex_wait_until_booted([node])
    assert not alive(old_daemon)
    assert "reboot requested from inside the node" in Path(node.extra["console_log"]).read_text()


def test_destroy_leaves_no_namespace_link_mount_or_process(cloud):
    node = cloud.create_node("doomed", "small", "basic")
    cloud.ex_wait_until_booted([node])
    volume = cloud.create_volume(1, "doomed-data")
    cloud.attach_volume(node, volume, "/srv/drb-doomed-" + node.id)
    netns_inode = os.stat(f"/run/netns/{node.extra['namespace']}").st_ino
    pids = runtime.pids_in_netns(netns_inode)
    assert pids
    links = set(os.listdir("/sys/class/net"))

    cloud.destroy_node(node)

    assert node.extra["namespace"] not in os.listdir("/run/netns")
    assert node.extra["host_veth"] not in os.listdir("/sys/class/net")
    assert set(os.listdir("/sys/class/net")) == links - {node.extra["host_veth"]}
    assert node.id not in Path("/proc/self/mountinfo").read_text()
    assert [p for p in pids if alive(p)] == []
    assert not Path("/srv/drb-doomed-" + node.id).exists()
    assert node.id not in {n.id for n in cloud.list_nodes()}
    assert {v.id: v.state for v in cloud.list_volumes()}[volume.id] == "available"
    cloud.destroy_volume(volume)


def test_a_volume_snapshot_is_readable_in_a_node_created_from_it(cloud, trio):
    writer = trio[0]
    volume = cloud.create_volume(1, "db")
    cloud.attach_volume(writer, volume, "/srv/drb-test-db")
    in_node(cloud, writer, "echo rows > /srv/drb-test-db/table")
    snapshot = cloud.create_volume_snapshot(volume, name="nightly")
    in_node(cloud, writer, "echo later > /srv/drb-test-db/table")

    reader = cloud.create_node("restored", "small", "basic")
    cloud.ex_wait_until_booted([reader])
    restored = cloud.create_volume(1, "db-restored", snapshot=snapshot)
    cloud.attach_volume(reader, restored, "/srv/drb-test-db")
    assert in_node(cloud, reader, "cat /srv/drb-test-db/table").strip() == "rows"
    assert in_node(cloud, writer, "cat /srv/drb-test-db/table").strip() == "later"
    cloud.destroy_node(reader)
    for v in (volume, restored):
        cloud.detach_volume(v)
        cloud.destroy_volume(v)
    cloud.destroy_volume_snapshot(snapshot)


def test_an_elastic_address_moves_from_one_node_to_another(cloud, trio):
    first, second = trio[0], trio[1]
    start_hostname_server(cloud, first)
    start_hostname_server(cloud, second)
    elastic = cloud.ex_allocate_address()

    cloud.ex_associate_address_with_node(first, elastic)
    assert ask_hostname(elastic.ip) == first.extra["hostname"]
    assert elastic.ip in cloud.ex_get_node(first.id).public_ips

    cloud.ex_associate_address_with_node(second, elastic)
    assert ask_hostname(elastic.ip) == second.extra["hostname"]
    assert elastic.ip not in in_node(cloud, first, "ip -4 -o addr")
    meta = json.loads(in_node(cloud, second, "cat /run/drb-cloud/meta-data.json"))
    assert meta["public-ipv4"] == elastic.ip

    cloud.ex_disassociate_address(elastic)
    cloud.ex_release_address(elastic)
    assert elastic.ip not in in_node(cloud, second, "ip -4 -o addr")


def test_cloud_config_user_data_runs_and_a_client_token_launches_once(cloud):
    user_data = ("#cloud-config\nwrite_files:\n  - path: /run/app.conf\n    content: ok\n"
                 "runcmd:\n  - cp /run/app.conf /run/app.copy\n")
    node = cloud.create_node("cc", "small", "basic", ex_userdata=user_data, ex_clienttoken="tok-1")
    again = cloud.create_node("cc", "small", "basic", ex_userdata=user_data, ex_clienttoken="tok-1")
    assert again.id == node.id
    assert [n.id for n in cloud.list_nodes() if n.name == "cc"] == [node.id]
    cloud.ex_wait_until_booted([node])
    assert in_node(cloud, node, "cat /run/app.copy") == "ok"
    assert in_node(cloud, node, "cat /run/drb-cloud/user-data") == user_data
    cloud.ex_create_tags(node, {"Name": "cc", "env": "drill"})
    cloud.ex_delete_tags(node, {"env": "drill"})
    assert cloud.ex_get_node(node.id).extra["tags"] == {"Name": "cc"}
    cloud.destroy_node(node)


def test_a_node_runs_while_its_user_data_still_runs_and_its_boot_ends_as_a_separate_signal(cloud, tmp_path):
    from drbootstrap.providers.local.provider import LocalProvider
    from drbootstrap.providers.settings import ProviderSettings
    from drbootstrap.providers.values import EnvironmentScope

    node = cloud.create_node("slow", "small", "basic", ex_userdata="#!/bin/sh\nsleep 300\n")
    provider = LocalProvider(ProviderSettings("local", network=cloud.network),
                             EnvironmentScope("slow", tmp_path, tmp_path / "key"), driver_factory=lambda: cloud)
    started = time.monotonic()
    [(running, _)] = cloud.wait_until_running([node], timeout=20)
    assert time.monotonic() - started < 20 and running.state == NodeState.RUNNING
    assert running.extra["boot"] == "booting" and not provider.boot_finished(running).finished
    with pytest.raises(WaitTimeoutError, match="not booted"):
        cloud.ex_wait_until_booted([node], timeout=2)
    cloud.destroy_node(node)


def test_a_node_whose_user_data_finished_has_finished_booting(cloud, tmp_path):
    from drbootstrap.providers.local.provider import LocalProvider
    from drbootstrap.providers.settings import ProviderSettings
    from drbootstrap.providers.values import EnvironmentScope

    node = cloud.create_node("quick", "small", "basic", ex_userdata="#!/bin/sh\necho done > /run/quick\n")
    [(booted, _)] = cloud.ex_wait_until_booted([node], timeout=60)
    provider = LocalProvider(ProviderSettings("local", network=cloud.network),
                             EnvironmentScope("quick", tmp_path, tmp_path / "key"), driver_factory=lambda: cloud)
    assert booted.extra["boot"] == "finished" and provider.boot_finished(booted).finished
    assert in_node(cloud, booted, "cat /run/quick").strip() == "done"
    cloud.destroy_node(node)


def test_a_failing_boot_puts_the_node_in_error_with_the_console_tail(cloud):
    node = cloud.create_node("bad", "small", "broken")
    with pytest.raises(ProviderError, match="disk not found"):
        cloud.ex_wait_until_booted([node])
    assert cloud.ex_get_node(node.id).state == NodeState.ERROR
    cloud.destroy_node(node)


def test_an_overlapping_network_is_refused_naming_the_address(cloud):
    other = LocalNodeDriver(state_dir=cloud.state_dir.parent / "overlap-state",
                            network=cloud.network, images_dir=IMAGES)
    try:
        with pytest.raises(PrerequisiteError, match=r"overlaps address .* on interface"):
            other.create_node("x", "small", "basic")
    finally:
        other.ex_cleanup()
        assert leftovers(other) == []


def test_cli_status_shows_nodes_and_cleanup_removes_everything_twice(cli, tmp_path):
    driver = LocalNodeDriver(state_dir=tmp_path / "state", network=free_network(), images_dir=IMAGES)
    try:
        node = driver.create_node("shown", "small", "basic")
        driver.ex_wait_until_booted([node])
        status = cli("local", "status", "--state-dir", str(driver.state_dir))
        assert status.exit_code == 0 and node.id in status.stdout and "running" in status.stdout
        processes = processes_of(driver)
        first = cli("local", "cleanup", "--state-dir", str(driver.state_dir), "--yes")
        assert first.exit_code == 0 and f"namespace {node.extra['namespace']}" in first.stdout
        assert leftovers(driver, processes) == []
        second = cli("local", "cleanup", "--state-dir", str(driver.state_dir), "--yes")
        assert second.exit_code == 0 and "nothing to remove" in second.stdout
    finally:
        driver.ex_cleanup()


def test_two_processes_launching_at_once_get_distinct_nodes_and_addresses(cloud):
    launch = (
        "import sys; from pathlib import Path; from drbootstrap.providers.local import LocalNodeDriver\n"
        f"d = LocalNodeDriver(state_dir=Path({str(cloud.state_dir)!r}), network={cloud.network!r}, "
        f"images_dir=Path({str(IMAGES)!r}))\n"
        "print(' '.join(d.create_node(f'{sys.argv[1]}{i}', 'small', 'basic').id for i in range(2)))\n"
    )
    workers = [subprocess.Popen([sys.executable, "-c", launch, name], stdout=subprocess.PIPE, text=True)
               for name in ("pa", "pb")]
    ids = [node_id for w in workers for node_id in w.communicate(timeout=60)[0].split()]
    assert all(w.returncode == 0 for w in workers) and len(set(ids)) == 4
    nodes = cloud.list_nodes(ex_node_ids=ids)
    assert len({n.private_ips[0] for n in nodes}) == 4
    cloud.ex_wait_until_booted(nodes)
    for node in nodes:
        cloud.destroy_node(node)


def test_bootcmd_runs_every_boot_while_runcmd_and_scripts_run_once(cloud):
    config = "#cloud-config\nbootcmd:\n  - echo bootcmd-ran\nruncmd:\n  - echo runcmd-ran $DRB_CLOUD_FIRST_BOOT\n"
    script = "#!/bin/sh\necho script-ran\n"
    configured = cloud.create_node("freq-cc", "small", "basic", ex_userdata=config)
    scripted = cloud.create_node("freq-sh", "small", "basic", ex_userdata=script)
    cloud.ex_wait_until_booted([configured, scripted])
    for node in (configured, scripted):
        cloud.reboot_node(node)
    cloud.ex_wait_until_booted([configured, scripted])
    console = Path(configured.extra["console_log"]).read_text()
    assert console.count("bootcmd-ran") == 2 and console.count("runcmd-ran 1") == 1
    assert console.count("basic image booting") == 2
    assert Path(scripted.extra["console_log"]).read_text().count("script-ran") == 1
    for node in (configured, scripted):
        cloud.destroy_node(node)
