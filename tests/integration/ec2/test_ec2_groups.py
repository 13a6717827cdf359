"""Per-group EC2 settings against a real moto server, through `up --until launch`, `status` and
`down`: the VPC and subnets found by their tags, a web group's service ports in a security group
of its own (in the VPC, by id), an elastic address per web node, and an instance type without
capacity giving way to the group's fallback (a real HTTP proxy in front of moto answers
RunInstances for that type with InsufficientInstanceCapacity); a lookup matching no subnet or two
is one line before anything is made."""

from __future__ import annotations

import pytest

from drbootstrap.errors import SpecError
from drbootstrap.executor import UpOptions, down, status, up
from drbootstrap.journal import Journal, Step
from drbootstrap.spec import load_spec
from tests.integration.ec2.test_ec2_environment import live_instances
from tests.integration.ec2.test_ec2_network import nothing_made, run_cli
from tests.integration.ec2.test_up_ec2 import tags_of
from tests.support.faulty_proxy import FaultPlan, Refusal, running_faulty_proxy

pytestmark = pytest.mark.integration

ENV = "vpcdrill"  # nothing_made looks for this environment's resources

SPEC = """\
environment: vpcdrill
domain: vpcdrill.internal
tags: {{CostCentre: cc-4711}}
provider:
  name: ec2
  region: us-east-1
  endpoint: {endpoint}
  credentials:
    access_key_id: ${{env:DRB_TEST_EC2_KEY}}
    secret_access_key: ${{env:DRB_TEST_EC2_SECRET}}
  vpc: {{tags: {{Name: {vpc_name}}}}}
  placement: {{subnets: [{{tags: {{Tier: web, Zone: a}}}}]}}
  images: {{master: ami-12c6146b, worker: ami-12c6146b}}
  sizes: {{small: t2.micro, big: m5.large}}
  extra:
    driver_class: "tests.support.moto_ec2:MotoEC2NodeDriver"
    operator_cidr: 192.0.2.10/32
    retry_base_delay: 0.05
    retry_max_delay: 0.5
master:
  hostname: controller
nodes:
  - role: web
    count: 2
    hostname_pattern: "web{{n:02}}"
    size: big
    fallback_sizes: [small]
    placement: {{subnets: [{web_subnets}]}}
    ports:
      - {{port: 80}}
      - {{port: 443, sources: [198.51.100.0/24]}}
    elastic_address: true
"""
BOTH_ZONES = "{tags: {Tier: web, Zone: a}}, {tags: {Tier: web, Zone: b}}"


@pytest.fixture
def tagged_network(ec2_view):
    def tag(resource: str, **tags: str) -> None:
        ec2_view.create_tags(Resources=[resource], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    vpc = ec2_view.create_vpc(CidrBlock="10.41.0.0/16")["Vpc"]["VpcId"]
    other = ec2_view.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    tag(vpc, Name="drb-net")
    subnets = {}
    for name, zone, cidr, in_vpc in (("a", "us-east-1a", "10.41.1.0/24", vpc), ("b", "us-east-1b", "10.41.2.0/24", vpc),
                                     ("elsewhere", "us-east-1a", "10.42.1.0/24", other)):
        made = ec2_view.create_subnet(VpcId=in_vpc, CidrBlock=cidr, AvailabilityZone=zone)
        subnets[name] = made["Subnet"]["SubnetId"]
        tag(subnets[name], Tier="web", Zone=name)
    return {"vpc": vpc, **subnets}


def write(tmp_path, endpoint: str, web_subnets: str = BOTH_ZONES, vpc_name: str = "drb-net"):
    path = tmp_path / "env.yaml"
    path.write_text(SPEC.format(endpoint=endpoint, web_subnets=web_subnets, vpc_name=vpc_name))
    return path


def test_tagged_subnets_a_groups_ports_and_addresses_and_a_fallback_type_when_one_has_no_capacity(
        fresh_moto, ec2_view, tagged_network, tmp_path, credentials):
    no_capacity = Refusal("RunInstances", "InstanceType", "m5.large", "InsufficientInstanceCapacity")
    with running_faulty_proxy(fresh_moto.url, FaultPlan(rate=0.0)) as proxy:
        proxy.refusals.append(no_capacity)
        spec = load_spec(write(tmp_path, proxy.url))
        state = tmp_path / "state"
        result, _ = up(spec, state, options=UpOptions(until=Step.LAUNCH))
        assert not result.failed, result
        assert proxy.count("RunInstances", "InsufficientInstanceCapacity") == 2  # once per web node

        instances = {tags_of(i)["drbootstrap:hostname"]: i for i in live_instances(ec2_view, ENV)}
        assert sorted(instances) == ["controller", "web01", "web02"]
        assert instances["controller"]["SubnetId"] == tagged_network["a"]
        assert instances["web01"]["SubnetId"] == tagged_network["a"]
        assert instances["web02"]["SubnetId"] == tagged_network["b"]
        assert instances["web02"]["Placement"]["AvailabilityZone"] == "us-east-1b"
        assert {i["InstanceType"] for h, i in instances.items() if h != "controller"} == {"t2.micro"}
        journal = Journal.open(state, ENV)
        assert journal.node("web01").steps[Step.LAUNCH].facts["size"] == "t2.micro"
        assert "size t2.micro (m5.large had no capacity)" in journal.node("web01").steps[Step.LAUNCH].detail

        groups = {g["GroupName"]: g for g in ec2_view.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [tagged_network["vpc"]]}])["SecurityGroups"]}
        web_group = groups[f"drb-{ENV}-web"]
        assert {"CostCentre": "cc-4711", "drbootstrap:role": "web"}.items() <= tags_of(web_group).items()
        opened = {(p["FromPort"], r["CidrIp"]) for p in web_group["IpPermissions"] for r in p["IpRanges"]}
        assert opened == {(80, "0.0.0.0/0"), (443, "198.51.100.0/24")}
        for hostname, instance in instances.items():
            expected = [groups[f"drb-{ENV}"]["GroupId"]] + ([] if hostname == "controller" else [web_group["GroupId"]])
            assert [g["GroupId"] for g in instance["SecurityGroups"]] == expected, hostname
        addresses = {a["InstanceId"]: a for a in ec2_view.describe_addresses()["Addresses"]}
        assert set(addresses) == {i["InstanceId"] for i in instances.values()}  # the master's and each web node's

        seen = status(spec, state, ping=False)
        assert f"security group {web_group['GroupId']} (drb-{ENV}-web)" in seen.resources
        assert sum(line.startswith("address ") for line in seen.resources) == 3

        # A later run (no preflight: the master exists) relaunches a lost web node: the lookup
        # found again, the group's own security group and address reused or made as before.
        ec2_view.terminate_instances(InstanceIds=[instances["web02"]["InstanceId"]])
        result, _ = up(spec, state, options=UpOptions(until=Step.LAUNCH))
        assert not result.failed, result
        relaunched = {tags_of(i)["drbootstrap:hostname"]: i for i in live_instances(ec2_view, ENV)}["web02"]
        assert relaunched["InstanceId"] != instances["web02"]["InstanceId"]
        assert relaunched["SubnetId"] == tagged_network["b"] and relaunched["InstanceType"] == "t2.micro"
        assert [g["GroupId"] for g in relaunched["SecurityGroups"]] == [groups[f"drb-{ENV}"]["GroupId"],
                                                                         web_group["GroupId"]]
        assert relaunched["InstanceId"] in {a.get("InstanceId") for a in ec2_view.describe_addresses()["Addresses"]}

        down(spec, state)
    assert live_instances(ec2_view, ENV) == []
    assert ec2_view.describe_addresses()["Addresses"] == []
    left = ec2_view.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [tagged_network["vpc"]]}])
    assert [g["GroupName"] for g in left["SecurityGroups"]] == ["default"]


@pytest.mark.parametrize(("web_subnets", "vpc_name", "expected"), [
    ("{tags: {Tier: web, Zone: c}}", "drb-net",
     "nodes[0].placement.subnets: no subnet tagged Tier=web, Zone=c in us-east-1 "),
    ("{tags: {Tier: web}}", "drb-net", "nodes[0].placement.subnets: 2 subnets are tagged Tier=web ("),
    (BOTH_ZONES, "nope", "provider.vpc: no VPC tagged Name=nope in us-east-1"),
])
def test_a_vpc_or_subnet_lookup_matching_none_or_several_is_one_line_before_anything_is_made(
        fresh_moto, ec2_view, tagged_network, tmp_path, credentials, web_subnets, vpc_name, expected):
    spec_file = write(tmp_path, fresh_moto.url, web_subnets, vpc_name)
    result = run_cli("up", str(spec_file), "--state-dir", str(tmp_path / "state"), "--until", "launch", "--plain")
    assert result.returncode == SpecError.exit_status, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert nothing_made(ec2_view)
