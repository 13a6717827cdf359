"""The EC2 family's VPC and subnets found by their tags (the spec's `{tags: {...}}` where an id
would be): exactly one must match, else one problem line naming the spec key (none, or how many
and which). Used by the checks before anything is created (ec2_network.py) and by a resumed run's
launch, which resolves a lookup again."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drbootstrap.errors import SpecError
from drbootstrap.providers.pacing import Pacing
from drbootstrap.spec.placement import BY_TAGS, described

if TYPE_CHECKING:
    from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver


@dataclass(frozen=True)
class Subnet:
    id: str
    vpc_id: str
    zone: str


def is_lookup(name: str | None) -> bool:
    return bool(name) and str(name).startswith(BY_TAGS)


def tag_filters(key: str) -> dict[str, list[str]]:
    tags = json.loads(key[len(BY_TAGS):])
    return {f"tag:{name}": [str(value)] for name, value in tags.items()}


def _request(driver: BaseEC2NodeDriver, params: dict[str, str], pacing: Pacing, operation: str):  # noqa: ANN202
    from drbootstrap.providers.ec2_resources import ec2_request

    return pacing.call(driver, operation, lambda: ec2_request(driver, params))


def _one(found: list[str], what: str, key: str, where: str, region: str) -> str:
    """The one id found, or the problem line."""
    if len(found) == 1:
        return found[0]
    if not found:
        raise SpecError([f"{where}: no {what} {described(key)} in {region} (check the tags and the region)"])
    raise SpecError([f"{where}: {len(found)} {what}s are {described(key)} ({', '.join(sorted(found))}): "
                     f"add a tag that tells them apart, or name the {what} by id"])


def find_vpc(driver: BaseEC2NodeDriver, key: str, pacing: Pacing, where: str = "provider.vpc") -> str:
    """The id of the one VPC carrying the lookup's tags; SpecError otherwise."""
    from drbootstrap.providers.ec2_network import filter_params

    body = _request(driver, {"Action": "DescribeVpcs", **filter_params(tag_filters(key))}, pacing,
                    f"find VPC {described(key)}")
    found = [item.findtext("{*}vpcId") or "" for item in body.iterfind(".//{*}vpcSet/{*}item")]
    return _one(found, "VPC", key, where, driver.region_name)


def find_subnet(driver: BaseEC2NodeDriver, key: str, pacing: Pacing, *, vpc: str | None, where: str) -> Subnet:
    """The one subnet (of `vpc`, if given) carrying the lookup's tags; SpecError otherwise."""
    from drbootstrap.providers.ec2_network import filter_params

    filters = {**tag_filters(key), **({"vpc-id": [vpc]} if vpc else {})}
    body = _request(driver, {"Action": "DescribeSubnets", **filter_params(filters)}, pacing,
                    f"find subnet {described(key)}")
    found = {item.findtext("{*}subnetId") or "": Subnet(item.findtext("{*}subnetId") or "",
                                                        item.findtext("{*}vpcId") or "",
                                                        item.findtext("{*}availabilityZone") or "")
             for item in body.iterfind(".//{*}subnetSet/{*}item")}
    return found[_one(sorted(found), "subnet", key, where, driver.region_name + (f" {vpc}" if vpc else ""))]


def launch_subnet(driver: BaseEC2NodeDriver, key: str, *, vpc: str | None, known: Mapping[str, str],
                  pacing: Pacing) -> str:
    """The subnet id a node's placement names: an id as it is; a lookup as the preflight found it
    (`known`), else (a resumed run, whose preflight was the first run's) found again."""
    if not is_lookup(key):
        return key
    if key in known:
        return known[key]
    if is_lookup(vpc):
        vpc = find_vpc(driver, str(vpc), pacing)
    return find_subnet(driver, key, pacing, vpc=vpc, where="placement.subnets").id
