"""`drbootstrap up --until launch` (the real CLI, in a subprocess) against moto behind a proxy that
fails 3 requests in 10 and holds back the answer to a create while the client is SIGKILLed: after
resuming, exactly the spec's instances, volumes and address exist, all tagged, the key file matches
the key pair, and `down` leaves nothing of the environment, tagged or not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from drbootstrap.providers.operator_key import load_or_create_operator_key, public_key_fingerprints
from tests.integration.ec2.conftest import ACCESS_KEY, SECRET_KEY
from tests.integration.ec2.test_ec2_environment import live_instances
from tests.integration.ec2.test_up_ec2 import ENV, GROUP, a_snapshot, tags_of, write_spec
from tests.support.faulty_proxy import THROTTLE, UNAVAILABLE, FaultPlan, running_faulty_proxy

pytestmark = pytest.mark.integration

# Each kill lands while moto has made the thing and the client has not heard so; in this order
# each resumed run gets one step further (key pair, master, its address, a worker's volume).
KILLED_AT = ("ImportKeyPair", "RunInstances", "AllocateAddress", "CreateVolume")
CLI = Path(sys.executable).with_name("drbootstrap")
PROJECT = Path(__file__).resolve().parents[3]


def cli(*args: str) -> subprocess.Popen:
    """The installed CLI; the project on its path for the spec's test driver (extra driver_class)."""
    env = {**os.environ, "DRB_TEST_EC2_KEY": ACCESS_KEY, "DRB_TEST_EC2_SECRET": SECRET_KEY,
           "PYTHONPATH": str(PROJECT)}
    return subprocess.Popen([str(CLI), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, cwd=PROJECT)


def wait_for_hold(proxy, client: subprocess.Popen, action: str) -> None:
    """Until the proxy holds `action`'s answer; fails with the client's output if it ended first."""
    while not proxy.holding.wait(0.2):
        if client.poll() is not None:
            pytest.fail(f"the client ended before {action} reached the cloud:\n{client.communicate()[0]}")


def snapshot_of_cloud(view) -> dict:
    """What the cloud holds now, read with boto3 straight from moto."""
    return {"reservations": view.describe_instances()["Reservations"], "instances": live_instances(view, ENV),
            "volumes": view.describe_volumes()["Volumes"], "addresses": view.describe_addresses()["Addresses"],
            "groups": view.describe_security_groups(Filters=[{"Name": "group-name", "Values": [GROUP]}])[
                "SecurityGroups"],
            "key_pairs": view.describe_key_pairs()["KeyPairs"]}


def ours(resources: list[dict]) -> list[dict]:
    return [r for r in resources if tags_of(r).get("drbootstrap:environment") == ENV]


def test_a_client_killed_while_creates_are_unanswered_resumes_to_exactly_the_spec_and_down_leaves_nothing(
        fresh_moto, ec2_view, tmp_path):
    snapshot = a_snapshot(ec2_view)
    source_volumes = {v["VolumeId"] for v in ec2_view.describe_volumes()["Volumes"]}
    state = tmp_path / "state"
    plan = FaultPlan(rate=0.3, seed=20261125, kinds=(THROTTLE, UNAVAILABLE))
    with running_faulty_proxy(fresh_moto.url, plan) as proxy:
        spec = write_spec(tmp_path, proxy.url, snapshot, web_count=3)
        up = ("up", str(spec), "--state-dir", str(state), "--until", "launch", "--plain")
        for action in KILLED_AT:
            proxy.hold_next(action)
            client = cli(*up)
            try:
                wait_for_hold(proxy, client, action)
            finally:
                if client.poll() is None:
                    os.killpg(client.pid, signal.SIGKILL)
                client.wait(30)
                proxy.release.set()
        resumed = cli(*up)
        output = resumed.communicate(timeout=600)[0]
        faults = proxy.count(fault=THROTTLE) + proxy.count(fault=UNAVAILABLE)

        cloud = snapshot_of_cloud(ec2_view)
        key_file = state / "environments" / ENV / "ssh-key.pem"
        cloud["key_file_mode"] = key_file.stat().st_mode & 0o777
        cloud["public_key"] = load_or_create_operator_key(key_file)
        down = cli("down", str(spec), "--state-dir", str(state), "--yes")  # through the faults too
        down_output = down.communicate(timeout=300)[0]

    assert resumed.returncode == 0, output
    assert faults > 10  # the fault rate really bit
    assert sum(len(r["Instances"]) for r in cloud["reservations"]) == 5  # none launched twice, none lost
    instances = {tags_of(i)["drbootstrap:hostname"]: i for i in cloud["instances"]}
    assert sorted(instances) == ["controller", "db01", "web01", "web02", "web03"]
    roots = {m["Ebs"]["VolumeId"] for i in instances.values() for m in i["BlockDeviceMappings"]
             if m["DeviceName"] == i.get("RootDeviceName", "/dev/sda1")}  # each instance's own root volume
    made = [v for v in cloud["volumes"] if v["VolumeId"] not in source_volumes | roots]
    assert made == ours(made) and len(made) == 2  # every volume made is tagged: none leaked untagged
    assert sorted(tags_of(v)["drbootstrap:device"] for v in made) == ["/dev/sdf", "/dev/sdg"]
    assert {v["Attachments"][0]["InstanceId"] for v in made} == {instances["db01"]["InstanceId"]}
    addresses = cloud["addresses"]
    assert addresses == ours(addresses) and len(addresses) == 1
    assert addresses[0]["InstanceId"] == instances["controller"]["InstanceId"]
    assert len(cloud["groups"]) == 1 and cloud["groups"] == ours(cloud["groups"])
    [key_pair] = cloud["key_pairs"]
    assert cloud["key_file_mode"] == 0o600
    assert key_pair["KeyFingerprint"] in public_key_fingerprints(cloud["public_key"])
    assert all(i["KeyName"] == GROUP for i in instances.values())

    assert down.returncode == 0, down_output
    assert live_instances(ec2_view, ENV) == []
    assert ec2_view.describe_addresses()["Addresses"] == []
    assert ec2_view.describe_key_pairs()["KeyPairs"] == []
    assert ec2_view.describe_security_groups(Filters=[{"Name": "group-name", "Values": [GROUP]}])[
        "SecurityGroups"] == []
    left = [v for v in ec2_view.describe_volumes()["Volumes"] if v["VolumeId"] not in source_volumes | roots]
    assert left == []
    assert not (state / "environments" / ENV / "ssh-key.pem").exists()
