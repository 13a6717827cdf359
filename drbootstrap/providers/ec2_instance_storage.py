"""How the EC2 family makes a node's storage beyond drbootstrap's own volumes: the kind of a volume
(type, IOPS, throughput, encryption) as CreateVolume parameters, and the custom tags on the volumes
an instance was launched with (its root volume), which RunInstances does not tag."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from libcloud.compute.base import Node

from drbootstrap.providers.nodes import ENVIRONMENT_TAG, node_id
from drbootstrap.providers.pacing import Pacing

if TYPE_CHECKING:
    from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver


@dataclass(frozen=True)
class VolumeKind:
    """How a volume is made: type (gp3, io2...), IOPS, throughput (MiB/s), encryption (under the
    default key, or kms_key); None: the cloud's default."""

    type: str | None = None
    iops: int | None = None
    throughput: int | None = None
    encrypted: bool | None = None
    kms_key: str | None = None

    def params(self) -> dict[str, str]:
        params = {"VolumeType": self.type, "Iops": self.iops, "Throughput": self.throughput,
                  "Encrypted": "true" if self.encrypted or self.kms_key else "false" if self.encrypted is False
                  else None, "KmsKeyId": self.kms_key}
        return {key: str(value) for key, value in params.items() if value is not None}


def tag_root_volumes(driver: BaseEC2NodeDriver, node: Node, tags: Mapping[str, str], *, pacing: Pacing) -> list[str]:
    """The custom tags on the volumes the instance was launched with (not drbootstrap's own: they
    go with the instance, never with the environment's volumes teardown deletes)."""
    from drbootstrap.providers import ec2_resources

    done = []
    attached = pacing.call(driver, f"list volumes of {node.id}", lambda: driver.list_volumes(
        ex_filters={"attachment.instance-id": node_id(node)}))
    for volume in attached:
        have = ec2_resources.volume_extra(volume).get("tags") or {}
        if ENVIRONMENT_TAG in have or all(have.get(k) == v for k, v in tags.items()):
            continue
        tag = functools.partial(ec2_resources.create_tags, driver, str(volume.id), tags)
        pacing.call(driver, f"tag volume {volume.id}", tag, transient_codes=ec2_resources.NOT_YET)
        done.append(f"root volume {volume.id} tagged")
    return done
