"""Spec models of where nodes go and what they boot: placement over subnets (by id or by tags) or
zones, a VPC by id or by tags, and an image looked up by name and owner or read from an SSM
parameter. Documented in examples/README.md (provider, placement)."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Discriminator, Field, Tag, model_validator

from drbootstrap.spec.model_base import SpecModel
from drbootstrap.spec.types import TagKey, TagValue, Token, invalid

# A resource found by its tags is named, where an id would be, by this prefix and its tags as JSON
# (providers/ec2_lookup.py reads it back).
BY_TAGS = "tags:"


class TagLookupSpec(SpecModel):
    """A resource found by its tags instead of its id: exactly one must carry all of them."""

    tags: dict[TagKey, TagValue] = Field(min_length=1, max_length=16)

    @property
    def key(self) -> str:
        """The lookup as the text an id would be (BY_TAGS + the tags as JSON, in key order)."""
        return BY_TAGS + json.dumps(dict(sorted(self.tags.items())), separators=(",", ":"))


def lookup_key(value: str | TagLookupSpec) -> str:
    return value.key if isinstance(value, TagLookupSpec) else value


def described(name: str) -> str:
    """An id as it is, a lookup as `tagged Key=Value, ...` (for messages)."""
    if not name.startswith(BY_TAGS):
        return name
    tags = json.loads(name[len(BY_TAGS):])
    return "tagged " + ", ".join(f"{key}={value}" for key, value in tags.items())


# A subnet or a VPC: its id (text) or a tag lookup (a mapping).
BY_ID, BY_TAG_LOOKUP = "by-id", "by-tags"
IdOrLookup = Annotated[
    Annotated[Token, Tag(BY_ID)] | Annotated[TagLookupSpec, Tag(BY_TAG_LOOKUP)],
    Discriminator(lambda value: BY_TAG_LOOKUP if isinstance(value, dict | TagLookupSpec) else BY_ID),
]


class PlacementSpec(SpecModel):
    """Where nodes go, spread round-robin in order: subnets by id or by tags (each in its zone), or
    zones of the region (the cloud's default network in each). Exactly one of the two."""

    subnets: list[IdOrLookup] = Field(default_factory=list, max_length=64)
    zones: list[Token] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> PlacementSpec:
        if self.subnets and self.zones:
            raise invalid("placement names both subnets and zones", "keep one: a subnet is in one zone already")
        if not self.subnets and not self.zones:
            raise invalid("placement needs one of 'subnets' or 'zones', not empty",
                          "list subnet ids (subnets: [subnet-...]) or zone names (zones: [us-east-1a])")
        for kind in ("subnets", "zones"):
            names = [lookup_key(name) for name in getattr(self, kind)]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise invalid(f"placement {kind} repeats {', '.join(described(r) for r in repeated)}",
                              "name each once", at=kind)
        return self

    @property
    def choices(self) -> list[tuple[str, str]]:
        """("subnet"|"zone", name) in the order nodes are spread over them (a subnet found by its
        tags named by its lookup key, which the provider resolves)."""
        return [("subnet", lookup_key(s)) for s in self.subnets] + [("zone", z) for z in self.zones]


class ImageLookupSpec(SpecModel):
    """An image found by name at launch: the newest of `owner`'s images whose name matches
    `name` (* and ? wildcards). Recorded in the journal, so a resumed run launches the same one."""

    name: str = Field(pattern=r"^[A-Za-z0-9 ._:/()\[\]*?+=,@-]{1,128}$")
    owner: Token


class ImageParameterSpec(SpecModel):
    """An image id read at launch from an SSM parameter (how current images are published, e.g.
    /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64). Recorded in the
    journal like a lookup by name, so a resumed run launches the same one."""

    ssm: str = Field(pattern=r"^/?[A-Za-z0-9_.\-/]{1,1011}$")


# An image is an id (text) or a lookup (a mapping): the value's shape picks which, so that a problem
# is reported against that one alone. The tags are dropped from problem locations (spec/problems.py).
IMAGE_BY_ID, IMAGE_BY_NAME, IMAGE_BY_SSM = "by-id", "by-name", "by-ssm"


def _image_kind(value: object) -> str:
    if isinstance(value, ImageParameterSpec) or (isinstance(value, dict) and "ssm" in value):
        return IMAGE_BY_SSM
    return IMAGE_BY_NAME if isinstance(value, dict | ImageLookupSpec) else IMAGE_BY_ID


ImageValue = Annotated[
    Annotated[Token, Tag(IMAGE_BY_ID)] | Annotated[ImageLookupSpec, Tag(IMAGE_BY_NAME)]
    | Annotated[ImageParameterSpec, Tag(IMAGE_BY_SSM)],
    Discriminator(_image_kind),
]
