"""`up --until launch`, `status` and `down` through libcloud's EC2 driver against a real moto server:
moto holds exactly what the spec implies afterwards (the broker link stomp+ssl by default, under the
environment's CA, whose key no user-data holds), nothing after `down`; through a throttling proxy
`up` makes exactly one instance per node, within the spec's request rate, and shows its retries."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from drbootstrap.executor import UpOptions, down, status, up
from drbootstrap.journal import Journal, Step
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.providers.throttle import TokenBucket
from drbootstrap.spec import load_spec
from tests.integration.ec2.test_ec2_environment import live_instances
from tests.support.faulty_proxy import (
    THROTTLE,
    UNAVAILABLE,
    FaultPlan,
    max_in_any_window,
    running_faulty_proxy,
)

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).with_name("moto_env.yaml")
ENV = "motodrill"
GROUP = f"drb-{ENV}"
OPERATOR = "192.0.2.10/32"
SERVICES = {("tcp", 53), ("udp", 53), ("tcp", 61613), ("tcp", 61614), ("tcp", 8140)}
# Between taking a token and the proxy reading the request: loopback transit plus a scheduling stall
# on a busy 2-core machine (0.05 s let 12 requests through a 0.1 s window there: one over, by jitter).
TRANSIT_TOLERANCE = 0.1


def write_spec(tmp_path: Path, endpoint: str, snapshot: str, *, web_count: int = 3, rate: float = 50,
               burst: int = 20) -> Path:
    text = (TEMPLATE.read_text().replace("@ENDPOINT@", endpoint).replace("@SNAPSHOT@", snapshot)
            .replace("@WEB_COUNT@", str(web_count)).replace("@RATE@", str(rate)).replace("@BURST@", str(burst)))
    path = tmp_path / "env.yaml"
    path.write_text(text)
    return path


def a_snapshot(view) -> str:
    source = view.create_volume(Size=8, AvailabilityZone="us-east-1a")["VolumeId"]
    return view.create_snapshot(VolumeId=source)["SnapshotId"]


def tags_of(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def assert_broker_tls_by_default_without_the_ca_key(ec2_view, instances: dict, paths: EnvironmentPaths) -> None:
    """The spec says nothing of TLS: every node's user-data, as EC2 holds it, sets stomp+ssl and carries
    the environment's CA; only the master's carries its issuing key; none, nor the journal, the CA's key."""
    ca = paths.broker_ca.read_text()
    ca_key_lines = [line for line in paths.broker_ca_key.read_text().splitlines() if not line.startswith("-----")]
    assert paths.broker_ca_key.stat().st_mode & 0o777 == 0o600 and ca_key_lines
    issuer_key = paths.broker_issuer_key.read_text()
    for hostname, instance in instances.items():
        attribute = ec2_view.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
        text = base64.b64decode(attribute["UserData"]["Value"]).decode()
        files = {f["path"]: f for f in yaml.safe_load(text.removeprefix("#cloud-config\n"))["write_files"]}
        assert "DRB_BROKER_PROTOCOL=stomp+ssl" in files["/etc/drbootstrap/node.env"]["content"], hostname
        assert files["/etc/drbootstrap/broker-ca.pem"]["content"] == ca, hostname
        issuer = files.get("/etc/drbootstrap/broker-issuer.key")
        if hostname == "controller":
            assert issuer is not None and issuer["permissions"] == "0600" and issuer["content"] == issuer_key
        else:
            assert issuer is None and issuer_key not in text, hostname
        assert not any(line in text for line in ca_key_lines), hostname
    journal_text = paths.journal.read_text()
    assert not any(line in journal_text for line in ca_key_lines) and issuer_key not in journal_text


def test_up_until_launch_leaves_exactly_the_specs_instances_group_key_address_and_volumes_and_down_none(
        fresh_moto, ec2_view, tmp_path, credentials):
    snapshot = a_snapshot(ec2_view)
    spec = load_spec(write_spec(tmp_path, fresh_moto.url, snapshot))
    state = tmp_path / "state"

    result, _ = up(spec, state, options=UpOptions(until=Step.LAUNCH))

    assert not result.failed and result.until == "launch"
    assert {o.hostname for o in result.outcomes.values()} == {"controller", "db01", "web01", "web02", "web03"}
    instances = {tags_of(i)["drbootstrap:hostname"]: i for i in live_instances(ec2_view, ENV)}
    assert sorted(instances) == ["controller", "db01", "web01", "web02", "web03"]
    assert sum(len(r["Instances"]) for r in ec2_view.describe_instances()["Reservations"]) == 5
    group = ec2_view.describe_security_groups(Filters=[{"Name": "group-name", "Values": [GROUP]}])["SecurityGroups"]
    assert len(group) == 1
    for hostname, instance in instances.items():
        tags = tags_of(instance)
        assert tags["drbootstrap:environment"] == ENV and tags["drbootstrap:generation"] == "1"
        assert tags["drbootstrap:role"] == {"controller": "master", "db01": "db"}.get(hostname, "web")
        assert instance["KeyName"] == GROUP and instance["ImageId"] == "ami-12c6146b"
        assert instance["InstanceType"] == "t2.micro"
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group[0]["GroupId"]]
    opened = set()
    for permission in group[0]["IpPermissions"]:
        opened |= {(permission["IpProtocol"], permission["FromPort"], "group") for _ in permission["UserIdGroupPairs"]}
        opened |= {(permission["IpProtocol"], permission["FromPort"], r["CidrIp"]) for r in permission["IpRanges"]}
    assert opened == ({(p, port, "group") for p, port in SERVICES} | {(p, port, OPERATOR) for p, port in SERVICES}
                      | {("tcp", 22, OPERATOR)})
    assert [k["KeyName"] for k in ec2_view.describe_key_pairs()["KeyPairs"]] == [GROUP]
    key_file = EnvironmentPaths(state, ENV).ssh_private_key
    assert key_file.stat().st_mode & 0o777 == 0o600 and "PRIVATE KEY" in key_file.read_text()
    addresses = ec2_view.describe_addresses()["Addresses"]
    assert [a["InstanceId"] for a in addresses] == [instances["controller"]["InstanceId"]]
    ours = [v for v in ec2_view.describe_volumes()["Volumes"] if tags_of(v).get("drbootstrap:environment") == ENV]
    assert sorted((tags_of(v)["drbootstrap:device"], v.get("SnapshotId") or None, v["Size"],
                   v["Attachments"][0]["InstanceId"]) for v in ours) == [
        ("/dev/sdf", snapshot, 8, instances["db01"]["InstanceId"]),
        ("/dev/sdg", None, 2, instances["db01"]["InstanceId"])]
    journal = Journal.open(state, ENV)
    assert all(journal.node(h).is_done(Step.LAUNCH) and not journal.node(h).steps.get(Step.BOOT)
               for h in instances)
    assert_broker_tls_by_default_without_the_ca_key(ec2_view, instances, EnvironmentPaths(state, ENV))

    seen = status(spec, state, ping=False)
    assert {n.hostname: n.cloud_state for n in seen.nodes} == dict.fromkeys(instances, "running")
    assert not seen.orphans
    assert f"key pair {GROUP}" in seen.resources
    assert sum(line.startswith("volume ") for line in seen.resources) == 2
    assert any(line.startswith(f"address {addresses[0]['PublicIp']} -> ") for line in seen.resources)

    from drbootstrap.cli.run_commands import status as status_command

    shown = CliRunner().invoke(status_command, [str(spec.source_path), "--state-dir", str(state), "--no-ping"])
    assert shown.exit_code == 0 and f"resource: key pair {GROUP}" in shown.output, shown.output

    again, _ = up(spec, state, options=UpOptions(until=Step.LAUNCH))  # resumes: nothing new
    assert not again.failed and len(live_instances(ec2_view, ENV)) == 5
    assert len(ec2_view.describe_addresses()["Addresses"]) == 1

    gone = down(spec, state)

    assert gone.destroyed == sorted(instances) and len(gone.volumes) == 2
    assert live_instances(ec2_view, ENV) == []
    assert ec2_view.describe_addresses()["Addresses"] == []
    assert ec2_view.describe_key_pairs()["KeyPairs"] == []
    assert ec2_view.describe_security_groups(Filters=[{"Name": "group-name", "Values": [GROUP]}])[
        "SecurityGroups"] == []
    assert not [v for v in ec2_view.describe_volumes()["Volumes"] if tags_of(v)]
    assert not key_file.exists()
    assert status(spec, state, ping=False).resources == []


def test_up_for_fifty_nodes_through_throttling_makes_fifty_instances_within_the_rate_and_shows_retries(
        fresh_moto, ec2_view, tmp_path, credentials):
    from drbootstrap.cli.run_commands import up as up_command

    snapshot = a_snapshot(ec2_view)
    rate, burst = 40, 5
    plan = FaultPlan(rate=1 / 3, seed=20261122, kinds=(THROTTLE, UNAVAILABLE))
    with running_faulty_proxy(fresh_moto.url, plan) as proxy:
        spec_file = write_spec(tmp_path, proxy.url, snapshot, web_count=48, rate=rate, burst=burst)
        run = CliRunner().invoke(up_command, [str(spec_file), "--state-dir", str(tmp_path / "state"),
                                              "--until", "launch", "--plain"], catch_exceptions=False)
        arrivals = proxy.times()
        faults = proxy.count(fault=THROTTLE) + proxy.count(fault=UNAVAILABLE)
        instances = live_instances(ec2_view, ENV)
        down(load_spec(spec_file), tmp_path / "state")

    assert run.exit_code == 0, run.output
    assert "all 50 nodes through launch" in run.output
    assert len(instances) == 50
    assert len({tags_of(i)["drbootstrap:hostname"] for i in instances}) == 50
    retries = [line for line in run.output.splitlines() if " cloud retry: " in line]
    assert faults > 10 and len(retries) == faults  # every fault was retried, and shown
    assert any("RequestLimitExceeded" in line or "throttled" in line for line in retries)
    # a plain line: "HH:MM:SS [  ELAPSEDs DONE/TOTAL] - cloud retry: ..."
    elapsed = [float(re.search(r"\[\s*([\d.]+)s", line).group(1)) for line in retries]
    assert max(elapsed) > 0.0 and len(set(elapsed)) > 1  # when each retry happened in the run, not 0.0
    allowance = TokenBucket(per_second=rate, burst=burst)
    for window in (0.1, 0.25, 0.5, 1.0, 2.0):
        allowed = math.floor(allowance.allowance(window + TRANSIT_TOLERANCE))
        assert max_in_any_window(arrivals, window) <= allowed, f"more than {allowed} requests in {window}s"
    assert live_instances(ec2_view, ENV) == []
