"""Eucalyptus as drbootstrap reaches it: its EC2 API at its own endpoint, port and path (as
euca2ools' EC2_URL names it, https://cloud:8773/services/compute), with libcloud's Eucalyptus
driver (signature version 2). A real moto server stands in for the cloud behind a real HTTP proxy
that serves the API only under /services/compute on a port of its own: `up --until launch`,
`status` and `down` work there, so the endpoint's port and path reach every request. An image by
SSM parameter (AWS's, not Eucalyptus's) is one line before anything is made."""

from __future__ import annotations

import pytest

from drbootstrap.errors import SpecError
from drbootstrap.executor import UpOptions, down, status, up
from drbootstrap.journal import Step
from drbootstrap.spec import load_spec
from tests.integration.ec2.test_ec2_environment import live_instances
from tests.integration.ec2.test_ec2_network import nothing_made, register_image
from tests.integration.ec2.test_up_ec2 import tags_of
from tests.support.faulty_proxy import FaultPlan, running_faulty_proxy

pytestmark = pytest.mark.integration

ENV = "vpcdrill"
PATH = "/services/compute"

SPEC = """\
environment: vpcdrill
domain: vpcdrill.internal
tags: {{CostCentre: cc-4711}}
provider:
  name: eucalyptus
  endpoint: {endpoint}
  credentials:
    access_key_id: ${{env:DRB_TEST_EC2_KEY}}
    secret_access_key: ${{env:DRB_TEST_EC2_SECRET}}
  placement: {{zones: [us-east-1a, us-east-1b]}}
  images:
    master: ami-12c6146b
    worker: {worker}
  sizes: {{small: t2.micro}}
  extra:
    driver_class: "tests.support.moto_ec2:MotoEucNodeDriver"
    operator_cidr: 192.0.2.10/32
    retry_base_delay: 0.05
    retry_max_delay: 0.5
master:
  hostname: controller
nodes:
  - role: app
    count: 2
    hostname_pattern: "app{{n:02}}"
    volumes:
      - {{name: data, mount: /srv/data, size_gb: 1}}
"""


def test_up_status_and_down_reach_eucalyptus_at_its_endpoint_port_and_path(fresh_moto, ec2_view, tmp_path,
                                                                           credentials):
    register_image(ec2_view, "emi-base-1")
    with running_faulty_proxy(fresh_moto.url, FaultPlan(rate=0.0), path_prefix=PATH,
                              upstream_service="ec2") as proxy:
        assert proxy.url.endswith(PATH) and proxy.url != fresh_moto.url
        spec_file = tmp_path / "env.yaml"
        spec_file.write_text(SPEC.format(endpoint=proxy.url, worker='{name: "emi-base-*", owner: "123456789012"}'))
        spec = load_spec(spec_file)
        state = tmp_path / "state"

        result, _ = up(spec, state, options=UpOptions(until=Step.LAUNCH))

        assert not result.failed, result
        instances = {tags_of(i)["drbootstrap:hostname"]: i for i in live_instances(ec2_view, ENV)}
        assert sorted(instances) == ["app01", "app02", "controller"]
        assert {h: i["Placement"]["AvailabilityZone"] for h, i in instances.items()} == {
            "controller": "us-east-1a", "app01": "us-east-1a", "app02": "us-east-1b"}
        volumes = ec2_view.describe_volumes(Filters=[{"Name": "tag:drbootstrap:environment", "Values": [ENV]}])
        assert len(volumes["Volumes"]) == 2
        seen = status(spec, state, ping=False)
        assert {n.hostname: n.cloud_state for n in seen.nodes} == dict.fromkeys(instances, "running")
        down(spec, state)
        assert proxy.paths == {PATH}, proxy.paths  # every request went to the endpoint's path
        assert proxy.count("RunInstances") == 3
    assert live_instances(ec2_view, ENV) == []
    assert ec2_view.describe_addresses()["Addresses"] == []


def test_an_image_by_ssm_parameter_on_eucalyptus_is_one_line_before_anything_is_made(fresh_moto, ec2_view, tmp_path,
                                                                                      credentials):
    spec_file = tmp_path / "env.yaml"
    with running_faulty_proxy(fresh_moto.url, FaultPlan(rate=0.0), path_prefix=PATH, upstream_service="ec2") as proxy:
        spec_file.write_text(SPEC.format(endpoint=proxy.url, worker="{ssm: /images/base}"))
        with pytest.raises(SpecError) as refused:
            up(load_spec(spec_file), tmp_path / "state", options=UpOptions(until=Step.LAUNCH))
    assert str(refused.value) == ("provider.images.worker: this cloud has no SSM parameters (give the image by id "
                                  "or by name and owner)")
    assert nothing_made(ec2_view)
