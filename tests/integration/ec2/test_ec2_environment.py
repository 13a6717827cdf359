"""The EC2 provider through libcloud's EC2 driver against a real moto server: what an environment
leaves in the cloud, that launching again adds nothing, and that teardown leaves nothing."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from drbootstrap.errors import ProviderError
from drbootstrap.providers.nodes import LaunchRequest, find_environment_nodes, launch_node
from drbootstrap.providers.operator_key import public_key_fingerprints
from drbootstrap.providers.pacing import Pacing
from drbootstrap.providers.throttle import RetryPolicy
from drbootstrap.providers.values import VolumeWanted
from tests.integration.ec2.conftest import ACCESS_KEY, IMAGE, SECRET_KEY, SIZE, driver_factory, ec2_provider

pytestmark = pytest.mark.integration

ENV = "drill1"
OPERATOR = "192.0.2.10"
ZONE = "us-east-1a"
WORKERS = ["web01", "web02", "mail01", "db01"]


def requests_for(environment: str = ENV, generation: int = 1) -> list[LaunchRequest]:
    common = dict(image_id=IMAGE, size_id=SIZE, zone=ZONE, generation=generation)
    master = LaunchRequest(environment, "master", "master", user_data="#!/bin/sh\necho master\n", **common)
    return [master] + [LaunchRequest(environment, name, "worker", user_data="#!/bin/sh\n", **common)
                       for name in WORKERS]


def live_instances(view, environment: str) -> list[dict]:
    pages = view.describe_instances(Filters=[{"Name": "tag:drbootstrap:environment", "Values": [environment]}])
    return [i for r in pages["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] not in ("terminated", "shutting-down")]


def build_environment(endpoint: str, tmp_path: Path, view) -> dict:
    provider = ec2_provider(endpoint, tmp_path, ENV)
    prepared = provider.prepare_environment()
    nodes = {r.hostname: provider.launch(r) for r in requests_for()}
    master = nodes["master"]
    [address] = provider.provision(master, "master", is_master=True, volumes=[])
    source = view.create_volume(Size=8, AvailabilityZone=ZONE)
    snapshot = view.create_snapshot(VolumeId=source["VolumeId"])["SnapshotId"]
    [volume] = provider.provision(nodes["db01"], "db01", is_master=False,
                                  volumes=[VolumeWanted("data", "/srv/db", 8, snapshot)])
    return dict(provider=provider, prepared=prepared, group_id=prepared.split()[-1], nodes=nodes,
                address=address.split()[-1], snapshot=snapshot, source_volume=source["VolumeId"],
                volume_id=volume.split()[1])


def test_an_environment_leaves_exactly_its_instances_tags_group_key_address_and_volume(fresh_moto, ec2_view, tmp_path):
    built = build_environment(fresh_moto.url, tmp_path, ec2_view)

    instances = live_instances(ec2_view, ENV)
    assert len(instances) == 5
    by_host = {}
    for instance in instances:
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        by_host[tags["drbootstrap:hostname"]] = instance
        assert tags["drbootstrap:environment"] == ENV
        assert tags["drbootstrap:role"] == ("master" if tags["Name"] == "master" else "worker")
        assert tags["Name"] == tags["drbootstrap:hostname"]
        assert instance["KeyName"] == "drb-drill1"
        assert instance["Placement"]["AvailabilityZone"] == ZONE
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [built["group_id"]]
    assert sorted(by_host) == sorted(["master", *WORKERS])
    assert sum(len(r["Instances"]) for r in ec2_view.describe_instances()["Reservations"]) == 5

    group = ec2_view.describe_security_groups(GroupIds=[built["group_id"]])["SecurityGroups"][0]
    opened = set()
    for permission in group["IpPermissions"]:
        for pair in permission["UserIdGroupPairs"]:
            assert pair["GroupId"] == built["group_id"]
            opened.add((permission["IpProtocol"], permission["FromPort"], "group"))
        for ip_range in permission["IpRanges"]:
            opened.add((permission["IpProtocol"], permission["FromPort"], ip_range["CidrIp"]))
    services = {("tcp", 53), ("udp", 53), ("tcp", 61613), ("tcp", 61614), ("tcp", 8140)}
    expected = {(p, port, "group") for p, port in services} | {(p, port, f"{OPERATOR}/32") for p, port in services}
    assert opened == expected | {("tcp", 22, f"{OPERATOR}/32")}

    [key_pair] = ec2_view.describe_key_pairs()["KeyPairs"]
    assert key_pair["KeyName"] == "drb-drill1"
    key_file = tmp_path / "drill1.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600  # generated here, then imported: it matches the pair
    assert key_pair["KeyFingerprint"] in public_key_fingerprints(built["provider"].operator_public_key())

    addresses = ec2_view.describe_addresses()["Addresses"]
    assert len(addresses) == 1
    assert addresses[0]["InstanceId"] == by_host["master"]["InstanceId"]
    assert addresses[0]["PublicIp"] == built["address"]

    volumes = {v["VolumeId"]: v for v in ec2_view.describe_volumes()["Volumes"]}
    restored = volumes[built["volume_id"]]
    assert {t["Key"]: t["Value"] for t in restored["Tags"]} == {
        "drbootstrap:environment": ENV, "drbootstrap:hostname": "db01", "drbootstrap:device": "/dev/sdf",
        "drbootstrap:volume": "data", "Name": "db01-sdf"}  # tagged by the create itself
    assert restored["SnapshotId"] == built["snapshot"]
    assert restored["Attachments"][0]["InstanceId"] == by_host["db01"]["InstanceId"]
    assert restored["Attachments"][0]["Device"] == "/dev/sdf"
    root_volumes = set(volumes) - {built["source_volume"], built["volume_id"]}
    assert sorted(volumes[v]["Attachments"][0]["InstanceId"] for v in root_volumes) == sorted(
        i["InstanceId"] for i in instances)  # moto gives each instance its root volume; nothing else


def test_launching_again_finds_every_node_and_makes_no_second_instance(fresh_moto, ec2_view, tmp_path):
    built = build_environment(fresh_moto.url, tmp_path, ec2_view)
    first_ids = {host: node.id for host, node in built["nodes"].items()}

    provider = ec2_provider(fresh_moto.url, tmp_path, ENV)  # a second run: a new provider, same key file
    assert {r.hostname: provider.launch(r).id for r in requests_for()} == first_ids
    assert launch_node(driver_factory(fresh_moto.url)(), requests_for()[1]).id == first_ids["web01"]
    # The other idempotent steps are repeated too, and change nothing.
    assert provider.prepare_environment() == built["prepared"]
    assert provider.provision(built["nodes"]["master"], "master", is_master=True, volumes=[]) == [
        f"elastic address {built['address']}"]
    [again] = provider.provision(built["nodes"]["db01"], "db01", is_master=False,
                                 volumes=[VolumeWanted("data", "/srv/db", 8, built["snapshot"])])
    assert again.split()[1] == built["volume_id"]

    assert len(live_instances(ec2_view, ENV)) == 5
    assert len(ec2_view.describe_addresses()["Addresses"]) == 1
    assert len(ec2_view.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["drb-drill1"]}])
               ["SecurityGroups"]) == 1
    assert len(ec2_view.describe_key_pairs()["KeyPairs"]) == 1


def test_a_key_pair_whose_private_key_was_lost_is_replaced_before_launch_and_refused_after(
        fresh_moto, ec2_view, tmp_path):
    provider = ec2_provider(fresh_moto.url, tmp_path, ENV)
    provider.prepare_environment()
    key_file = tmp_path / "drill1.pem"
    key_file.unlink()  # lost: the pair in the cloud holds a key nobody has

    provider.prepare_environment()  # nothing launched yet: the pair is replaced by the new key's

    [key_pair] = ec2_view.describe_key_pairs()["KeyPairs"]
    assert key_pair["KeyFingerprint"] in public_key_fingerprints(provider.operator_public_key())
    provider.launch(requests_for()[0])
    key_file.unlink()
    with pytest.raises(ProviderError, match="instances already use it") as refused:
        provider.prepare_environment()
    assert refused.value.hint and "\n" not in refused.value.message


def test_every_request_carries_a_deterministic_client_token(fresh_moto, ec2_view, tmp_path):
    provider = ec2_provider(fresh_moto.url, tmp_path, "tokens")
    provider.prepare_environment()
    for request in requests_for("tokens"):
        provider.launch(request)
    tokens = {i["ClientToken"] for i in live_instances(ec2_view, "tokens")}
    assert tokens == {r.client_token for r in requests_for("tokens")}
    assert requests_for("tokens")[0].client_token == LaunchRequest("tokens", "master", "x", "a", "b").client_token
    assert requests_for("tokens", generation=2)[0].client_token not in tokens


def test_teardown_leaves_no_instance_address_volume_group_or_key(fresh_moto, ec2_view, tmp_path):
    factory = driver_factory(fresh_moto.url)
    built = build_environment(fresh_moto.url, tmp_path, ec2_view)
    other = launch_node(factory(), LaunchRequest("bystander", "web01", "worker", IMAGE, SIZE))

    teardown = built["provider"].destroy_environment()

    assert teardown.destroyed == sorted(["master", *WORKERS]) and teardown.volumes == [built["volume_id"]]
    assert live_instances(ec2_view, ENV) == []
    assert find_environment_nodes(factory(), ENV) == {}
    assert ec2_view.describe_addresses()["Addresses"] == []
    remaining_volumes = {v["VolumeId"] for v in ec2_view.describe_volumes()["Volumes"] if not v["Attachments"]}
    assert built["volume_id"] not in {v["VolumeId"] for v in ec2_view.describe_volumes()["Volumes"]}
    assert built["source_volume"] in remaining_volumes  # not ours: left alone
    assert ec2_view.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["drb-drill1"]}])[
        "SecurityGroups"] == []
    assert ec2_view.describe_key_pairs()["KeyPairs"] == [] and not (tmp_path / "drill1.pem").exists()
    assert [n.id for n in find_environment_nodes(factory(), "bystander").values()] == [other.id]


def test_cloud_errors_name_the_operation_but_never_the_keys(fresh_moto, tmp_path):
    provider = ec2_provider(fresh_moto.url, tmp_path, ENV)
    provider.prepare_environment()
    node = provider.launch(LaunchRequest(ENV, "db01", "worker", IMAGE, SIZE, zone=ZONE))
    with pytest.raises(ProviderError) as caught:
        provider.provision(node, "db01", is_master=False, volumes=[VolumeWanted("data", "/srv", 8, "snap-00000000")])
    assert "InvalidSnapshot.NotFound" in str(caught.value) and "create volume" in str(caught.value)
    _assert_no_secret(caught.value)


def test_an_unreachable_endpoint_fails_after_bounded_retries_without_leaking_keys(fresh_moto):
    from tests.support.server_process import free_port

    driver = driver_factory(f"http://127.0.0.1:{free_port()}")()
    pacing = Pacing(policy=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02))
    events = []
    pacing.on_retry = events.append
    with pytest.raises(ProviderError, match="after 3 attempts") as caught:
        launch_node(driver, LaunchRequest(ENV, "web01", "worker", IMAGE, SIZE), pacing=pacing)
    assert len(events) == 2
    _assert_no_secret(caught.value)
    for event in events:
        assert ACCESS_KEY not in repr(event) and SECRET_KEY not in repr(event)


def _assert_no_secret(error: BaseException) -> None:
    rendered = "".join(traceback.format_exception(error)) + repr(error) + str(error)
    assert ACCESS_KEY not in rendered and SECRET_KEY not in rendered
    assert error.__cause__ is None and error.__suppress_context__
