"""A standby switch on EC2 (against moto): the dead active node's tagged elastic address is
re-associated with the spare; a node that holds none leaves the move to the master's DNS."""

from __future__ import annotations

import pytest

from drbootstrap.providers import ec2_resources
from drbootstrap.providers.nodes import LaunchRequest
from tests.integration.ec2.conftest import IMAGE, SIZE, ec2_provider

pytestmark = pytest.mark.integration

ENV = "standby1"


def test_the_dead_nodes_elastic_address_moves_to_the_spare_and_a_node_without_one_is_left_to_dns(
        fresh_moto, ec2_view, tmp_path):
    provider = ec2_provider(fresh_moto.url, tmp_path, ENV)
    provider.prepare_environment()
    nodes = {name: provider.launch(LaunchRequest(ENV, name, "worker", user_data="#!/bin/sh\n", image_id=IMAGE,
                                                 size_id=SIZE, zone="us-east-1a", generation=1))
             for name in ("web01", "web-standby1", "mail01")}
    address = ec2_resources.ensure_elastic_address(provider.driver(), nodes["web01"], ENV, "web01",
                                                   pacing=provider.pacing)
    ec2_view.terminate_instances(InstanceIds=[nodes["web01"].id])  # web01 dies

    assert provider.move_elastic_address("web01", nodes["web-standby1"]) == address
    [held] = ec2_view.describe_addresses(PublicIps=[address])["Addresses"]
    assert held["InstanceId"] == nodes["web-standby1"].id
    assert provider.move_elastic_address("web01", nodes["web-standby1"]) == address  # again: nothing changes
    assert provider.move_elastic_address("mail01", nodes["web-standby1"]) is None
