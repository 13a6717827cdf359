"""Defensive readers of the raw YAML data, for checks that must run even when it is malformed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pydantic_core import PydanticCustomError

from drbootstrap.spec.types import check_role


def get_in(data: Any, *path: str | int) -> Any:
    for part in path:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return None
        elif not isinstance(data, dict):
            return None
        data = data[part] if isinstance(part, int) else data.get(part)
    return data


def groups_of(data: dict) -> Iterator[tuple[int, dict]]:
    groups = data.get("nodes")
    if isinstance(groups, list):
        yield from ((i, g) for i, g in enumerate(groups) if isinstance(g, dict))


def is_valid(check: Callable[[str], str], value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        check(value)
    except PydanticCustomError:
        return False
    return True


def roles_of(data: dict) -> dict[str, int]:
    """Valid role name -> index of the first group that has it."""
    roles: dict[str, int] = {}
    for index, group in groups_of(data):
        role = group.get("role")
        if isinstance(role, str) and is_valid(check_role, role):
            roles.setdefault(role, index)
    return roles
