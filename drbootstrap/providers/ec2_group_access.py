"""What a group of the EC2 family opens to the world beyond the recipe: the ports it serves (a web
group's 80 and 443) in a security group of its own, drb-ENVIRONMENT-ROLE, made in the
environment's VPC, tagged as the environment's and the group's, and given to the group's nodes
beside the environment's group (so the master never serves them). Its elastic addresses are
ec2_resources.ensure_elastic_address's; teardown deletes these groups with the environment's."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from drbootstrap.providers.ec2_resources import (
    NOT_YET,
    IngressRule,
    _unless_refused,
    ec2_request,
    environment_resource_name,
    ingress_permissions,
    security_group_rules,
    tag_specification,
)
from drbootstrap.providers.nodes import ENVIRONMENT_TAG, ROLE_TAG, ServicePort
from drbootstrap.providers.pacing import Pacing

if TYPE_CHECKING:
    from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver


def group_resource_name(environment: str, role: str) -> str:
    return f"{environment_resource_name(environment)}-{role}"


def port_rules(ports: Iterable[ServicePort]) -> list[IngressRule]:
    return [IngressRule(p.protocol, p.port, source) for p in ports for source in p.sources]


def describe_groups(driver: BaseEC2NodeDriver, filters: Mapping[str, str], pacing: Pacing) -> list[dict[str, str]]:
    """DescribeSecurityGroups by filters: [{id, name, vpc}] (libcloud's answer lacks the VPC)."""
    from drbootstrap.providers.ec2_network import filter_params

    params = {"Action": "DescribeSecurityGroups", **filter_params({k: [v] for k, v in filters.items()})}
    body = pacing.call(driver, "describe security groups", lambda: ec2_request(driver, params))
    return [{"id": item.findtext("{*}groupId") or "", "name": item.findtext("{*}groupName") or "",
             "vpc": item.findtext("{*}vpcId") or ""}
            for item in body.iterfind(".//{*}securityGroupInfo/{*}item")]


def group_port_groups(driver: BaseEC2NodeDriver, environment: str, pacing: Pacing) -> list[dict[str, str]]:
    """The environment's groups' own security groups (tagged with a role)."""
    return describe_groups(driver, {f"tag:{ENVIRONMENT_TAG}": environment, "tag-key": ROLE_TAG}, pacing)


def ensure_group_ports(driver: BaseEC2NodeDriver, environment: str, role: str, ports: Iterable[ServicePort], *,
                       vpc_id: str | None, pacing: Pacing, tags: Mapping[str, str] | None = None) -> str:
    """The group's own security group with its service ports open (rules added, none removed); its id."""
    name = group_resource_name(environment, role)
    wanted = port_rules(ports)

    def existing_id() -> str | None:
        found = describe_groups(driver, {"group-name": name, **({"vpc-id": vpc_id} if vpc_id else {})}, pacing)
        return found[0]["id"] if found else None

    group_id = existing_id()
    if group_id is None:
        params = {"Action": "CreateSecurityGroup", "GroupName": name,
                  "GroupDescription": f"drbootstrap environment {environment}, group {role}: its service ports",
                  **tag_specification("security-group", {**(tags or {}), ENVIRONMENT_TAG: environment,
                                                         ROLE_TAG: role})}
        if vpc_id:
            params["VpcId"] = vpc_id
        created: Any = pacing.call(driver, f"create security group {name}", lambda: ec2_request(driver, params),
                                   before_retry=_unless_refused(existing_id))
        group_id = created if isinstance(created, str) else created.findtext(".//{*}groupId")
    assert group_id is not None

    def read_rules() -> set[IngressRule]:
        return pacing.call(driver, f"read rules of {name}", lambda: security_group_rules(driver, group_id))

    missing = [rule for rule in wanted if rule not in read_rules()]
    if missing:
        params = {"Action": "AuthorizeSecurityGroupIngress", "GroupId": group_id,
                  **ingress_permissions(group_id, missing)}
        pacing.call(driver, f"open {len(missing)} ports in {name}", lambda: ec2_request(driver, params),
                    before_retry=_unless_refused(lambda: True if set(missing) <= read_rules() else None))
    return group_id


def delete_group_port_groups(driver: BaseEC2NodeDriver, environment: str, *, pacing: Pacing) -> list[str]:
    """Delete the groups' own security groups (after their instances are gone); their names."""
    deleted = []
    for group in group_port_groups(driver, environment, pacing):
        pacing.call(driver, f"delete security group {group['name']}",
                    functools.partial(driver.ex_delete_security_group_by_id, group["id"]), transient_codes=NOT_YET)
        deleted.append(group["name"])
    return deleted
