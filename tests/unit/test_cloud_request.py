"""What the spec asks of the cloud per node (executor/cloud_request.py): placement round-robin over a
group's subnets or zones, the master on the first, what the provider is asked to check first."""

from __future__ import annotations

from drbootstrap.executor.cloud_request import placement_of, preflight_for, tags_for, volumes_wanted
from drbootstrap.plan import build_plan
from drbootstrap.providers.values import ImageRef
from drbootstrap.spec.models import EnvironmentSpec


def spec(**overrides) -> EnvironmentSpec:
    data = {
        "environment": "demo", "domain": "demo.internal", "tags": {"CostCentre": "cc-1", "Owner": "ops"},
        "provider": {"name": "ec2", "region": "us-east-1", "sizes": {"small": "t3.small"},
                     "images": {"master": "ami-1", "worker": {"name": "base-*", "owner": "self"}},
                     "placement": {"subnets": ["subnet-a"]}},
        "nodes": [
            {"role": "web", "count": 5, "hostname_pattern": "web{n:02}", "tags": {"Owner": "web team"},
             "placement": {"subnets": ["subnet-a", "subnet-b"]}, "extra": {"ex_iamprofile": "web"},
             "volumes": [{"name": "data", "mount": "/srv", "size_gb": 4, "type": "gp3", "kms_key": "alias/k"}]},
            {"role": "db", "hostnames": ["db01", "db02"], "placement": {"zones": ["us-east-1c"]}},
            {"role": "cache", "hostnames": ["cache01"]},
        ],
        **overrides,
    }
    return EnvironmentSpec.model_validate(data, strict=False)


def test_a_groups_nodes_go_round_robin_over_its_subnets_the_master_on_the_first_others_on_the_default():
    environment = spec()
    placed = {node.hostname: placement_of(environment, node) for node in build_plan(environment).nodes()}
    assert placed == {"controller": ("subnet", "subnet-a"),
                      "web01": ("subnet", "subnet-a"), "web02": ("subnet", "subnet-b"),
                      "web03": ("subnet", "subnet-a"), "web04": ("subnet", "subnet-b"), "web05": ("subnet", "subnet-a"),
                      "db01": ("zone", "us-east-1c"), "db02": ("zone", "us-east-1c"),
                      "cache01": ("subnet", "subnet-a")}


def test_the_preflight_names_every_subnet_zone_and_image_with_the_spec_key_that_asks_for_it():
    wanted = preflight_for(spec())
    assert wanted.subnets == {"subnet-a": "provider.placement.subnets", "subnet-b": "nodes[0].placement.subnets"}
    assert wanted.zones == {"us-east-1c": "nodes[1].placement.zones"}
    assert wanted.images == {"master": ImageRef(id="ami-1"), "worker": ImageRef(name="base-*", owner="self")}
    assert wanted.unplaced == ()
    assert wanted.create_options == {"nodes[0].extra": {"ex_iamprofile": "web"}}


def test_a_node_without_any_placement_is_named_so_the_provider_can_refuse_mixing_it_with_subnets():
    environment = spec()
    provider = environment.provider.model_copy(update={"placement": None})
    wanted = preflight_for(environment.model_copy(update={"provider": provider}))
    assert wanted.unplaced == ("master", "nodes[2]")


def test_group_tags_override_the_specs_and_volumes_carry_their_kind():
    environment = spec()
    assert tags_for(environment, environment.nodes[0]) == {"CostCentre": "cc-1", "Owner": "web team"}
    assert tags_for(environment, None) == {"CostCentre": "cc-1", "Owner": "ops"}
    [volume] = volumes_wanted(environment.nodes[0])
    assert (volume.type, volume.kms_key, volume.encrypted) == ("gp3", "alias/k", None)


def test_subnets_by_tags_images_by_ssm_ports_addresses_and_fallback_sizes_reach_the_preflight():
    from drbootstrap.executor.cloud_request import service_ports
    from drbootstrap.providers.nodes import ServicePort
    from drbootstrap.spec.placement import described

    environment = spec(nodes=[
        {"role": "web", "hostnames": ["web01", "web02"], "size": "small", "fallback_sizes": ["small"],
         "placement": {"subnets": [{"tags": {"Zone": "a", "Tier": "web"}}, "subnet-b"]},
         "ports": [{"port": 443}, {"port": 53, "protocol": "udp", "sources": ["10.0.0.0/8"]}],
         "elastic_address": True},
    ])
    environment.provider.images["worker"] = environment.provider.model_validate(
        {"name": "ec2", "images": {"worker": {"ssm": "/aws/service/base"}}}).images["worker"]
    wanted = preflight_for(environment)
    lookup = 'tags:{"Tier":"web","Zone":"a"}'
    assert wanted.subnets == {"subnet-a": "provider.placement.subnets", lookup: "nodes[0].placement.subnets",
                              "subnet-b": "nodes[0].placement.subnets"}
    assert described(lookup) == "tagged Tier=web, Zone=a"
    assert wanted.images["worker"] == ImageRef(ssm="/aws/service/base")
    assert str(wanted.images["worker"]) == "SSM parameter /aws/service/base"
    assert wanted.group_network == ("nodes[0].ports", "nodes[0].elastic_address")
    placed = {n.hostname: placement_of(environment, n) for n in build_plan(environment).nodes()}
    assert placed["web01"] == ("subnet", lookup) and placed["web02"] == ("subnet", "subnet-b")
    assert service_ports(environment.nodes[0]) == (ServicePort(443, "tcp", ("0.0.0.0/0",)),
                                                   ServicePort(53, "udp", ("10.0.0.0/8",)))
