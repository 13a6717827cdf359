"""EC2 as operators run it, against a real moto server through `up --until launch` and `down`: a VPC
with two subnets in two zones, a group spread across both, an image found by name and owner, gp3
encrypted volumes and custom tags; a run killed mid-launch, resumed, and a relaunch in a later run
use the image the first resolved even after a newer one appeared; `plan --resolve` shows it; a
subnet, a zone or an image pattern that does not exist is refused in one line before anything is
created."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drbootstrap.errors import SpecError
from drbootstrap.executor import UpOptions, down, status, up
from drbootstrap.journal import Journal, Step
from drbootstrap.spec import load_spec
from tests.integration.ec2.conftest import ACCESS_KEY, SECRET_KEY
from tests.integration.ec2.test_ec2_environment import live_instances
from tests.integration.ec2.test_up_ec2 import tags_of
from tests.support.faulty_proxy import THROTTLE, FaultPlan, running_faulty_proxy

pytestmark = pytest.mark.integration

ENV = "vpcdrill"
ACCOUNT = "123456789012"  # moto's account: the owner of the images the test registers
CUSTOM = {"CostCentre": "cc-4711", "Owner": "platform team"}
WEB_TAGS = {"Service": "web"}
CLI = Path(sys.executable).with_name("drbootstrap")
PROJECT = Path(__file__).resolve().parents[3]

SPEC = """\
environment: vpcdrill
domain: vpcdrill.internal
tags: {{CostCentre: cc-4711, Owner: platform team}}
provider:
  name: ec2
  region: us-east-1
  endpoint: {endpoint}
  credentials:
    access_key_id: ${{env:DRB_TEST_EC2_KEY}}
    secret_access_key: ${{env:DRB_TEST_EC2_SECRET}}
  vpc: {vpc}
  placement: {{subnets: [{subnet_a}]}}
  images:
    master: ami-12c6146b
    worker: {{name: "drb-base-*", owner: "{owner}"}}
  sizes: {{small: t2.micro}}
  extra:
    driver_class: "tests.support.moto_ec2:MotoEC2NodeDriver"
    operator_cidr: 192.0.2.10/32
    retry_base_delay: 0.05
    retry_max_delay: 0.5
master:
  hostname: controller
nodes:
  - role: web
    count: 4
    hostname_pattern: "web{{n:02}}"
    placement: {{subnets: [{subnet_a}, {subnet_b}]}}
    root_size_gb: 12
    tags: {{Service: web}}
    volumes:
      - {{name: data, mount: /srv/data, size_gb: 4, type: gp3, iops: 3000, throughput: 125, encrypted: true}}
      - {{name: logs, mount: /srv/logs, size_gb: 2, type: gp3, kms_key: {kms_key}}}
"""


@pytest.fixture
def network(ec2_view):
    vpc = ec2_view.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet_a = ec2_view.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24", AvailabilityZone="us-east-1a")
    subnet_b = ec2_view.create_subnet(VpcId=vpc, CidrBlock="10.40.2.0/24", AvailabilityZone="us-east-1b")
    return {"vpc": vpc, "subnet_a": subnet_a["Subnet"]["SubnetId"], "subnet_b": subnet_b["Subnet"]["SubnetId"]}


def register_image(ec2_view, name: str) -> str:
    """An image owned by this account, named `name` (moto dates it now: one second apart, so newest is clear)."""
    instance = ec2_view.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image = ec2_view.create_image(InstanceId=instance, Name=name)["ImageId"]
    ec2_view.terminate_instances(InstanceIds=[instance])
    time.sleep(1.1)
    return image


def write_spec(tmp_path: Path, endpoint: str, network: dict, *, owner: str = ACCOUNT, **overrides: str) -> Path:
    values = {"endpoint": endpoint, "owner": owner, "kms_key": "alias/drb-test", **network, **overrides}
    path = tmp_path / "env.yaml"
    path.write_text(SPEC.format(**values))
    return path


def test_a_group_spread_over_two_subnets_with_an_image_by_name_gp3_encrypted_volumes_and_custom_tags(
        fresh_moto, ec2_view, network, tmp_path, credentials):
    register_image(ec2_view, "drb-base-2026-01")
    newest = register_image(ec2_view, "drb-base-2026-02")
    register_image(ec2_view, "other-2026-03")  # newer, but another name
    spec_file = write_spec(tmp_path, fresh_moto.url, network)
    spec = load_spec(spec_file)
    state = tmp_path / "state"
    shown = run_cli("plan", str(spec_file), "--resolve", "--state-dir", str(state))
    assert shown.returncode == 0, shown.stderr
    assert f"image worker: newest 'drb-base-*' of owner {ACCOUNT} -> {newest}" in shown.stdout
    assert "image master: ami-12c6146b -> ami-12c6146b" in shown.stdout
    assert nothing_made(ec2_view)

    result, _ = up(spec, state, options=UpOptions(until=Step.LAUNCH))

    assert not result.failed, result
    instances = {tags_of(i)["drbootstrap:hostname"]: i for i in live_instances(ec2_view, ENV)}
    assert sorted(instances) == ["controller", "web01", "web02", "web03", "web04"]
    expected_subnet = {"controller": network["subnet_a"], "web01": network["subnet_a"],
                       "web02": network["subnet_b"], "web03": network["subnet_a"], "web04": network["subnet_b"]}
    group = ec2_view.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"drb-{ENV}"]}])[
        "SecurityGroups"]
    assert len(group) == 1 and group[0]["VpcId"] == network["vpc"]
    assert CUSTOM.items() <= tags_of(group[0]).items()
    for hostname, instance in instances.items():
        zone = "us-east-1a" if expected_subnet[hostname] == network["subnet_a"] else "us-east-1b"
        assert instance["SubnetId"] == expected_subnet[hostname], hostname
        assert instance["Placement"]["AvailabilityZone"] == zone, hostname
        assert instance["VpcId"] == network["vpc"]
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group[0]["GroupId"]]
        assert instance["ImageId"] == ("ami-12c6146b" if hostname == "controller" else newest), hostname
        wanted = {**CUSTOM, **(WEB_TAGS if hostname != "controller" else {})}
        assert wanted.items() <= tags_of(instance).items(), hostname
    volumes = ec2_view.describe_volumes(Filters=[{"Name": "attachment.instance-id",
                                                  "Values": [i["InstanceId"] for i in instances.values()]}])["Volumes"]
    by_instance: dict[str, list[dict]] = {}
    for volume in volumes:
        by_instance.setdefault(volume["Attachments"][0]["InstanceId"], []).append(volume)
        owner = next(h for h, i in instances.items() if i["InstanceId"] == volume["Attachments"][0]["InstanceId"])
        assert CUSTOM.items() <= tags_of(volume).items(), (owner, volume["VolumeId"])
        assert volume["AvailabilityZone"] == instances[owner]["Placement"]["AvailabilityZone"]
    for hostname in ("web01", "web02", "web03", "web04"):
        made = {tags_of(v).get("drbootstrap:volume"): v for v in by_instance[instances[hostname]["InstanceId"]]}
        assert made["data"]["VolumeType"] == "gp3" and made["data"]["Encrypted"] and made["data"]["Size"] == 4
        assert made["data"]["Iops"] == 3000
        assert made["logs"]["VolumeType"] == "gp3" and made["logs"]["Encrypted"]
        assert made["logs"]["KmsKeyId"].endswith("alias/drb-test")
        assert WEB_TAGS.items() <= tags_of(made["data"]).items()
        assert made[None]["Size"] == 12  # the root volume, as the spec sized it
    address = ec2_view.describe_addresses()["Addresses"]
    assert len(address) == 1 and CUSTOM.items() <= tags_of(address[0]).items()
    key_pairs = ec2_view.describe_key_pairs(KeyNames=[f"drb-{ENV}"])["KeyPairs"]
    assert CUSTOM.items() <= tags_of(key_pairs[0]).items()
    journal = Journal.open(state, ENV)
    assert journal.data.resolved == {"image:master": "ami-12c6146b", "image:worker": newest}

    seen = status(spec, state, ping=False)
    assert {n.hostname: n.cloud_state for n in seen.nodes} == dict.fromkeys(instances, "running")
    assert f"security group {group[0]['GroupId']} (drb-{ENV})" in seen.resources
    assert sum(line.startswith("volume ") for line in seen.resources) == 8  # 2 per web node, not the roots

    # A later run relaunches a lost worker after a newer image appeared: the journal's image, not the newest.
    register_image(ec2_view, "drb-base-2026-09")
    ec2_view.terminate_instances(InstanceIds=[instances["web03"]["InstanceId"]])
    result, _ = up(spec, state, options=UpOptions(until=Step.LAUNCH))
    assert not result.failed, result
    relaunched = {tags_of(i)["drbootstrap:hostname"]: i for i in live_instances(ec2_view, ENV)}["web03"]
    assert relaunched["InstanceId"] != instances["web03"]["InstanceId"]
    assert relaunched["ImageId"] == newest and relaunched["SubnetId"] == network["subnet_a"]

    down(spec, state)
    assert live_instances(ec2_view, ENV) == []
    assert Journal.open(state, ENV).data.resolved == {}  # the next `up` resolves afresh
    assert not ec2_view.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"drb-{ENV}"]}])[
        "SecurityGroups"]


def cli_env() -> dict[str, str]:
    """The project on the CLI's path for the spec's test driver (extra driver_class); the credentials."""
    return {**os.environ, "DRB_TEST_EC2_KEY": ACCESS_KEY, "DRB_TEST_EC2_SECRET": SECRET_KEY,
            "PYTHONPATH": str(PROJECT)}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed CLI, run to its end."""
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=300, cwd=PROJECT, env=cli_env())


def test_plan_resolve_says_so_when_it_cannot_contact_the_cloud(fresh_moto, network, tmp_path):
    spec_file = write_spec(tmp_path, "http://127.0.0.1:9", network)  # discard port: nothing listens
    spec_file.write_text(spec_file.read_text().replace("retry_max_delay: 0.5", "retry_max_delay: 0.5\n"
                                                       "    retry_max_attempts: 2"))
    shown = run_cli("plan", str(spec_file), "--resolve", "--state-dir", str(tmp_path / "state"))
    assert shown.returncode == 0, shown.stderr
    assert f"image worker: newest 'drb-base-*' of owner {ACCOUNT} (not resolved:" in shown.stdout


def nothing_made(ec2_view) -> bool:
    groups = ec2_view.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"drb-{ENV}"]}])
    return (not groups["SecurityGroups"] and not ec2_view.describe_key_pairs()["KeyPairs"]
            and live_instances(ec2_view, ENV) == [])


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"subnet_b": "subnet-0badc0ffee0000000"},
     "nodes[0].placement.subnets: subnet subnet-0badc0ffee0000000 does not exist in us-east-1"),
    ({"owner": "999999999999"}, "provider.images.worker: no image of owner 999999999999 has a name matching "
                                "'drb-base-*' in us-east-1"),
])
def test_a_subnet_or_image_that_does_not_exist_is_one_line_before_anything_is_made(
        fresh_moto, ec2_view, network, tmp_path, credentials, overrides, expected):
    register_image(ec2_view, "drb-base-2026-01")
    spec_file = write_spec(tmp_path, fresh_moto.url, {**network, **{k: v for k, v in overrides.items()
                                                                   if k != "owner"}},
                           owner=overrides.get("owner", ACCOUNT))
    result = run_cli("up", str(spec_file), "--state-dir", str(tmp_path / "state"), "--until", "launch", "--plain")
    assert result.returncode == SpecError.exit_status, result.stdout + result.stderr
    assert expected in result.stderr + result.stdout
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr
    assert nothing_made(ec2_view)


def test_a_zone_not_in_the_region_is_refused_before_anything_is_made(fresh_moto, ec2_view, network, tmp_path,
                                                                      credentials):
    register_image(ec2_view, "drb-base-2026-01")
    text = write_spec(tmp_path, fresh_moto.url, network).read_text()
    text = text.replace("  vpc: {}\n".format(network["vpc"]), "").replace(
        "placement: {{subnets: [{}]}}".format(network["subnet_a"]), "placement: {zones: [us-east-1a]}").replace(
        "placement: {{subnets: [{}, {}]}}".format(network["subnet_a"], network["subnet_b"]),
        "placement: {zones: [us-east-1b, eu-west-1a]}")
    (tmp_path / "env.yaml").write_text(text)
    spec = load_spec(tmp_path / "env.yaml")
    with pytest.raises(SpecError) as refused:
        up(spec, tmp_path / "state", options=UpOptions(until=Step.LAUNCH))
    assert str(refused.value).startswith("nodes[0].placement.zones: zone eu-west-1a is not in region us-east-1")
    assert nothing_made(ec2_view)


def test_a_run_killed_while_the_master_launches_resumes_with_the_image_the_first_run_resolved(
        fresh_moto, ec2_view, network, tmp_path, credentials):
    first = register_image(ec2_view, "drb-base-2026-01")
    state = tmp_path / "state"
    with running_faulty_proxy(fresh_moto.url, FaultPlan(rate=0.0, seed=21, kinds=(THROTTLE,))) as proxy:
        spec_file = write_spec(tmp_path, proxy.url, network)
        up_args = ("up", str(spec_file), "--state-dir", str(state), "--until", "launch", "--plain")
        proxy.hold_next("RunInstances")  # the master's: the kill lands before its launch step is recorded
        client = subprocess.Popen([str(CLI), *up_args], env=cli_env(), cwd=PROJECT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            while not proxy.holding.wait(0.2):
                if client.poll() is not None:
                    pytest.fail(f"the client ended before RunInstances:\n{client.communicate()[0]}")
        finally:
            if client.poll() is None:
                os.killpg(client.pid, signal.SIGKILL)
            client.wait(30)
            proxy.release.set()
        newer = register_image(ec2_view, "drb-base-2026-09")  # published while the run was down
        resumed = run_cli(*up_args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    instances = {tags_of(i)["drbootstrap:hostname"]: i for i in live_instances(ec2_view, ENV)}
    assert sorted(instances) == ["controller", "web01", "web02", "web03", "web04"]
    assert {instances[h]["ImageId"] for h in ("web01", "web02", "web03", "web04")} == {first} != {newer}
    assert Journal.open(state, ENV).data.resolved["image:worker"] == first


def test_an_older_spec_with_extra_ex_subnet_launches_every_node_there_with_the_group_by_id(
        fresh_moto, ec2_view, network, tmp_path, credentials):
    register_image(ec2_view, "drb-base-2026-01")
    text = write_spec(tmp_path, fresh_moto.url, network).read_text()
    text = text.replace("  placement: {{subnets: [{}]}}\n".format(network["subnet_a"]), "").replace(
        "    placement: {{subnets: [{}, {}]}}\n".format(network["subnet_a"], network["subnet_b"]), "").replace(
        "    operator_cidr:", "    ex_subnet: {}\n    operator_cidr:".format(network["subnet_b"]))
    (tmp_path / "env.yaml").write_text(text)

    result, _ = up(load_spec(tmp_path / "env.yaml"), tmp_path / "state", options=UpOptions(until=Step.LAUNCH))

    assert not result.failed, result
    group = ec2_view.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"drb-{ENV}"]}])[
        "SecurityGroups"]
    assert group[0]["VpcId"] == network["vpc"]
    instances = live_instances(ec2_view, ENV)
    assert len(instances) == 5
    assert {(i["SubnetId"], i["Placement"]["AvailabilityZone"]) for i in instances} == {
        (network["subnet_b"], "us-east-1b")}
    assert all([g["GroupId"] for g in i["SecurityGroups"]] == [group[0]["GroupId"]] for i in instances)


def with_web_extra(tmp_path: Path, endpoint: str, network: dict, extra: str) -> Path:
    spec_file = write_spec(tmp_path, endpoint, network)
    text = spec_file.read_text().replace("    root_size_gb: 12\n", f"    root_size_gb: 12\n    extra: {extra}\n")
    spec_file.write_text(text)
    return spec_file


def test_a_groups_own_extra_gives_its_nodes_alone_an_instance_profile_and_spot(
        fresh_moto, ec2_view, network, tmp_path, credentials):
    import boto3

    boto3.client("iam", region_name="us-east-1", endpoint_url=fresh_moto.url, aws_access_key_id=ACCESS_KEY,
                 aws_secret_access_key=SECRET_KEY).create_instance_profile(InstanceProfileName="web-role")
    register_image(ec2_view, "drb-base-2026-01")
    with running_faulty_proxy(fresh_moto.url, FaultPlan(rate=0.0)) as proxy:
        spec_file = with_web_extra(tmp_path, proxy.url, network,
                                   "{ex_iamprofile: web-role, ex_spot: true, ex_spot_max_price: 0.05}")
        result, _ = up(load_spec(spec_file), tmp_path / "state", options=UpOptions(until=Step.LAUNCH))
    assert not result.failed, result
    # moto keeps no spot price: the requests themselves show it, the workers' alone.
    launches = [params for action, params in proxy.requests if action == "RunInstances"]
    assert len(launches) == 5
    prices = sorted(p.get("InstanceMarketOptions.SpotOptions.MaxPrice", ["none"])[0] for p in launches)
    assert prices == ["0.05"] * 4 + ["none"]
    instances = {tags_of(i)["drbootstrap:hostname"]: i for i in live_instances(ec2_view, ENV)}
    for hostname, instance in instances.items():
        if hostname == "controller":
            assert "IamInstanceProfile" not in instance and instance.get("InstanceLifecycle") != "spot"
        else:
            assert instance["IamInstanceProfile"]["Arn"].endswith("instance-profile/web-role"), hostname
            assert instance["InstanceLifecycle"] == "spot", hostname


def test_a_groups_extra_naming_what_drbootstrap_sets_is_refused_before_anything_is_made(
        fresh_moto, ec2_view, network, tmp_path, credentials):
    register_image(ec2_view, "drb-base-2026-01")
    spec_file = with_web_extra(tmp_path, fresh_moto.url, network, "{ex_keyname: mine, ex_colour: blue}")
    result = run_cli("up", str(spec_file), "--state-dir", str(tmp_path / "state"), "--until", "launch", "--plain")
    assert result.returncode == SpecError.exit_status, result.stdout + result.stderr
    assert "nodes[0].extra: ex_keyname is set by drbootstrap itself" in result.stderr
    assert "nodes[0].extra: ex_colour is not an argument of EC2's create_node" in result.stderr
    assert nothing_made(ec2_view)
