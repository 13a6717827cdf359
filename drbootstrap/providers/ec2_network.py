"""The EC2 family's checks before anything is created: the spec's subnets exist (and share one VPC,
the one the security group is made in), its zones are the region's, its images resolve (by id, the
newest of an owner's images whose name matches a pattern, or the id an SSM parameter holds). Every
problem is one line naming the spec key, raised together before the key pair or the security
group exists."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drbootstrap.errors import SpecError
from drbootstrap.providers.pacing import Pacing
from drbootstrap.providers.values import ImageRef, Preflight

if TYPE_CHECKING:
    from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver


# SSM parameter names -> the value each holds (None: no such parameter).
ParameterReader = Callable[[list[str]], Mapping[str, "str | None"]]


@dataclass(frozen=True)
class Image:
    id: str
    name: str = ""
    created: str = ""
    root_device: str | None = None


@dataclass(frozen=True)
class Network:
    """Where the environment's nodes live: its VPC (None: the account's default), each subnet's
    zone, and the subnets the spec names by tags."""

    vpc_id: str | None = None
    subnet_zones: Mapping[str, str] = field(default_factory=dict)
    subnet_ids: Mapping[str, str] = field(default_factory=dict)  # a tag lookup's key -> its subnet id


def _request(driver: BaseEC2NodeDriver, params: Mapping[str, str]) -> Any:
    from drbootstrap.providers.ec2_resources import ec2_request

    return ec2_request(driver, params)


def filter_params(filters: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Filter.N.Name / Filter.N.Value.M parameters (a filter matching nothing is an empty answer, not an error)."""
    params: dict[str, str] = {}
    for index, (name, values) in enumerate(filters.items(), start=1):
        params[f"Filter.{index}.Name"] = name
        for number, value in enumerate(values, start=1):
            params[f"Filter.{index}.Value.{number}"] = value
    return params


def describe_subnets(driver: BaseEC2NodeDriver, subnet_ids: Iterable[str],
                     pacing: Pacing) -> dict[str, tuple[str, str]]:
    """subnet id -> (VPC id, zone) for those of `subnet_ids` that exist."""
    if not subnet_ids:
        return {}
    params = {"Action": "DescribeSubnets", **filter_params({"subnet-id": sorted(subnet_ids)})}
    body = pacing.call(driver, "describe subnets", lambda: _request(driver, params))
    return {item.findtext("{*}subnetId") or "": (item.findtext("{*}vpcId") or "", item.findtext("{*}availabilityZone")
                                                 or "")
            for item in body.iterfind(".//{*}subnetSet/{*}item")}


def region_zones(driver: BaseEC2NodeDriver, pacing: Pacing) -> list[str]:
    body = pacing.call(driver, "describe availability zones",
                       lambda: _request(driver, {"Action": "DescribeAvailabilityZones"}))
    return sorted(item.findtext("{*}zoneName") or "" for item in body.iterfind(".//{*}availabilityZoneInfo/{*}item"))


def describe_images(driver: BaseEC2NodeDriver, ref: ImageRef, pacing: Pacing) -> list[Image]:
    """The images `ref` names: its id, or every image of its owner whose name matches its pattern."""
    if ref.id is not None:
        params = {"Action": "DescribeImages", **filter_params({"image-id": [ref.id]})}
    else:
        params = {"Action": "DescribeImages", "Owner.1": str(ref.owner), **filter_params({"name": [str(ref.name)]})}
    body = pacing.call(driver, f"look up image {ref}", lambda: _request(driver, params))
    return [Image(item.findtext("{*}imageId") or "", item.findtext("{*}name") or "",
                  item.findtext("{*}creationDate") or "", item.findtext("{*}rootDeviceName"))
            for item in body.iterfind(".//{*}imagesSet/{*}item")]


def resolve_image(driver: BaseEC2NodeDriver, logical: str, ref: ImageRef, pacing: Pacing) -> Image | str:
    """The image (the newest by creation date, then id, of those matching), or the problem line."""
    found = describe_images(driver, ref, pacing)
    if not found:
        if ref.id is not None:
            return (f"provider.images.{logical}: image {ref.id} does not exist in {driver.region_name} "
                    "(or is not shared with this account; check the id and the region)")
        return (f"provider.images.{logical}: no image of owner {ref.owner} has a name matching {ref.name!r} "
                f"in {driver.region_name} (check the pattern, the owner's account id and the region)")
    return max(found, key=lambda image: (image.created, image.id))


def check_network(driver: BaseEC2NodeDriver, wanted: Preflight, *, vpc: str | None, pacing: Pacing) -> Network:
    """The VPC and the subnets' zones, after checking subnets, zones and VPC against the cloud;
    SpecError with one line per problem."""
    from drbootstrap.providers import ec2_lookup as lookup

    problems: list[str] = []
    subnet_zones: dict[str, str] = {}
    subnet_ids: dict[str, str] = {}  # a tag lookup's key -> the subnet it found
    vpcs: dict[str, str] = {}  # VPC id -> a subnet in it
    if lookup.is_lookup(vpc):
        try:
            vpc = lookup.find_vpc(driver, str(vpc), pacing)
        except SpecError as error:
            raise SpecError(error.problems) from None  # without a VPC, the subnets cannot be checked
    if wanted.subnets:
        found = describe_subnets(driver, [s for s in wanted.subnets if not lookup.is_lookup(s)], pacing)
        for subnet, where in wanted.subnets.items():
            if lookup.is_lookup(subnet):
                try:
                    tagged = lookup.find_subnet(driver, subnet, pacing, vpc=vpc, where=where)
                except SpecError as error:
                    problems += error.problems
                    continue
                subnet_ids[subnet] = tagged.id
                found[tagged.id] = (tagged.vpc_id, tagged.zone)
                subnet = tagged.id
            if subnet not in found:
                problems.append(f"{where}: subnet {subnet} does not exist in {driver.region_name} "
                                "(check the id and the region)")
                continue
            subnet_vpc, subnet_zones[subnet] = found[subnet]
            vpcs.setdefault(subnet_vpc, subnet)
            if vpc is not None and subnet_vpc != vpc:
                problems.append(f"{where}: subnet {subnet} is in {subnet_vpc}, not in provider.vpc {vpc} "
                                "(name subnets of that VPC, or change provider.vpc)")
        if vpc is None and len(vpcs) > 1:
            problems.append("placement: the subnets are in " + ", ".join(f"{v} ({s})" for v, s in sorted(vpcs.items()))
                            + " (an environment lives in one VPC: name subnets of one of them)")
        problems += [f"{where}: no placement while other nodes are placed in subnets "
                     "(give it placement.subnets, or set provider.placement)" for where in wanted.unplaced]
    elif vpc is not None:
        problems.append(f"provider.vpc {vpc}: no subnets to place nodes in (add provider.placement.subnets)")
    if wanted.zones:
        zones = region_zones(driver, pacing)
        problems += [f"{where}: zone {zone} is not in region {driver.region_name} (its zones: {', '.join(zones)})"
                     for zone, where in wanted.zones.items() if zone not in zones]
    if problems:
        raise SpecError(problems)
    return Network(vpc_id=vpc or next(iter(vpcs), None), subnet_zones=subnet_zones, subnet_ids=subnet_ids)


def resolve_images(driver: BaseEC2NodeDriver, images: Mapping[str, ImageRef], pacing: Pacing,
                   parameters: ParameterReader | None = None) -> dict[str, Image]:
    """logical name -> image, or SpecError with one line per image that resolves to nothing. An
    image named by an SSM parameter is the image id the parameter holds (`parameters` reads them)."""
    resolved: dict[str, Image] = {}
    problems = []
    names = sorted({str(ref.ssm) for ref in images.values() if ref.ssm})
    held: Mapping[str, str | None] = {}
    if names:
        if parameters is None:
            raise SpecError([f"provider.images.{logical}: this cloud has no SSM parameters (give the image by id "
                             "or by name and owner)" for logical, ref in images.items() if ref.ssm])
        held = parameters(names)
    for logical, ref in images.items():
        if ref.ssm:
            value = held.get(ref.ssm)
            if not value:
                problems.append(f"provider.images.{logical}: SSM parameter {ref.ssm} does not exist in "
                                f"{driver.region_name} (check the name and the region)")
                continue
            image = resolve_image(driver, logical, ImageRef(id=value), pacing)
            if isinstance(image, str):
                image = (f"provider.images.{logical}: SSM parameter {ref.ssm} holds {value}, which is not an image "
                         f"in {driver.region_name}")
        else:
            image = resolve_image(driver, logical, ref, pacing)
        if isinstance(image, str):
            problems.append(image)
        else:
            resolved[logical] = image
    if problems:
        raise SpecError(problems)
    return resolved
