"""`drbootstrap up examples/libvirt.yaml` on real virtual machines (libvirt, KVM or QEMU): master + 3
workers built from the images `drbootstrap images build` makes, checked end to end as the local
cloud's e2e is (tests/integration/up/test_up_local_e2e.py), then `down` leaves nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.libvirt.conftest import leftovers, make_environment, tear_down
from tests.integration.up.conftest import E2E_GATE
from tests.support.prereq import REPO_ROOT, require

pytestmark = [pytest.mark.integration, E2E_GATE]
WORKERS = ["db01", "web01", "mail01"]
NAME = "virte2e"


def build_images() -> None:
    """Both images, from the cache when their inputs have not changed (minutes from nothing)."""
    for image in ("master", "worker"):
        run = subprocess.run([sys.executable, "-m", "drbootstrap", "images", "build", image], capture_output=True,
                             text=True, timeout=3600, check=False, stdin=subprocess.DEVNULL, cwd=REPO_ROOT)
        require(run.returncode == 0, f"`drbootstrap images build {image}` ({(run.stderr.strip() or '?')[-300:]})")


@pytest.fixture(scope="module")
def environment(libvirtd):
    build_images()
    env = make_environment((REPO_ROOT / "examples" / "libvirt.yaml").read_text(), NAME)
    try:
        env.first_run = env.cli("up", str(env.spec_file), "--json")
        yield env
    finally:
        tear_down(env)


def test_up_completes_every_node_with_its_checks_green(environment):
    run = environment.first_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["event"] == "result" and result["failed"] == []


def test_recipes_reach_the_master_over_ssh_with_its_console_host_key_pinned(environment):
    events = [json.loads(line) for line in environment.first_run.stdout.splitlines()]
    done = [e for e in events if e.get("event") == "step" and e["step"] == "services" and e["state"] == "done"]
    assert done, environment.first_run.stdout[-2000:]
    assert "pushed over SSH" in done[-1]["detail"] and "pinned from its console" in done[-1]["detail"]


def test_each_worker_took_its_spec_name_and_puppet_left_its_role(environment):
    roles = {"db01": "db", "web01": "web", "mail01": "mail"}
    for hostname, role in roles.items():
        assert environment.ssh(hostname, "hostname") == hostname
        assert environment.ssh(hostname, "cat /etc/drbootstrap/role") == role


def test_the_volume_is_a_real_block_device_formatted_and_mounted(environment):
    source, fstype = environment.ssh("db01", "findmnt -no SOURCE,FSTYPE /srv/db").split()
    assert source.startswith("/dev/vd") and fstype == "ext4"
    assert environment.ssh("db01", f"test -b {source} && echo block") == "block"
    assert environment.ssh("db01", "cat /srv/db/ready") == "ready"


def test_forward_and_reverse_dns_through_the_master_agree(environment):
    import dns.resolver
    import dns.reversename

    journal = json.loads(environment.paths.journal.read_text())
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [journal["nodes"]["controller"]["address"]]
    for hostname in WORKERS:
        fqdn = f"{hostname}.virt.internal"  # the example's domain
        address = journal["nodes"][hostname]["address"]
        assert [a.to_text() for a in resolver.resolve(fqdn, "A")] == [address]
        ptr = resolver.resolve(dns.reversename.from_address(address), "PTR")
        assert [p.to_text().rstrip(".") for p in ptr] == [fqdn]


def test_status_pings_every_node_over_the_broker_and_sees_puppet_ran(environment):
    run = environment.cli("status", str(environment.spec_file), "--json", timeout=300)
    status = json.loads(run.stdout)
    assert {n["hostname"]: n["agent"] for n in status["nodes"]} == dict.fromkeys(["controller", *WORKERS], "answers")
    assert status["orphans"] == []
    for node in status["nodes"]:
        if node["role"] != "master":
            assert node["puppet_status"]["enabled"] is True and node["puppet_status"]["lastrun"] > 0


def test_down_leaves_no_domain_disk_network_or_process(environment):
    run = environment.cli("down", str(environment.spec_file), "--yes", timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert leftovers(NAME) == []
    again = environment.cli("down", str(environment.spec_file), "--yes", timeout=600)
    assert again.returncode == 0 and leftovers(NAME) == []
