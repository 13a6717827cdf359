"""Checks across node groups: roles, how hostnames are given, unique hostnames, the `after:` graph."""

from __future__ import annotations

import difflib
from typing import Any

from drbootstrap.spec.limits import MAX_GROUPS, MAX_NODES, MAX_STANDBY
from drbootstrap.spec.positions import Path_
from drbootstrap.spec.problems import Problem, dotted
from drbootstrap.spec.raw import get_in, groups_of, is_valid, roles_of
from drbootstrap.spec.types import check_dns_name, check_hostname_pattern, check_label, check_role

DEFAULT_MASTER_HOSTNAME = "controller"
MAX_FQDN_LENGTH = 253


def check_groups(data: dict) -> list[Problem]:
    """Unique roles, exactly one way of naming each group's nodes, unique volume names and mounts."""
    problems = []
    groups = data.get("nodes")
    if isinstance(groups, list) and len(groups) > MAX_GROUPS:
        problems.append(
            Problem(
                ("nodes",),
                f"nodes: {len(groups)} groups, over the limit of {MAX_GROUPS}",
                "put nodes of one role in one group (hostnames: [...] or count:)",
                at_key=True,
            )
        )
    seen_roles: dict[str, int] = {}
    for index, group in groups_of(data):
        role = group.get("role")
        if isinstance(role, str) and is_valid(check_role, role):
            if role in seen_roles:
                problems.append(
                    Problem(
                        ("nodes", index, "role"),
                        f"nodes[{index}].role: role '{role}' is already used by nodes[{seen_roles[role]}]",
                        "merge the two groups or rename one role",
                    )
                )
            seen_roles.setdefault(role, index)
        where = ("nodes", index)
        for key in ("hostnames", "count", "hostname_pattern"):
            if key in group and group[key] is None:  # `hostnames:` with nothing after it
                problems.append(
                    Problem(where + (key,), f"nodes[{index}].{key}: is empty", "give it a value or remove the key")
                )
        has_list, has_count, has_pattern = (
            group.get("hostnames") is not None,
            group.get("count") is not None,
            group.get("hostname_pattern") is not None,
        )
        if has_list and (has_count or has_pattern):
            key = "count" if has_count else "hostname_pattern"
            problems.append(
                Problem(
                    where + (key,),
                    f"nodes[{index}]: give either hostnames or count + hostname_pattern, not both",
                    f"remove '{key}' or 'hostnames'",
                    at_key=True,
                )
            )
        elif not has_list and not has_count and not has_pattern and not _misspells_naming_key(group):
            problems.append(
                Problem(
                    where,
                    f"nodes[{index}]: has no hostnames",
                    "add hostnames: [web01] or count: 2 with hostname_pattern: web{n:02}",
                    at_key=True,
                )
            )
        elif not has_list and has_count != has_pattern:
            present, missing = ("count", "hostname_pattern") if has_count else ("hostname_pattern", "count")
            problems.append(
                Problem(
                    where + (present,),
                    f"nodes[{index}]: '{present}' needs '{missing}'",
                    f"add {missing}: ...",
                    at_key=True,
                )
            )
        problems += _check_volumes(index, group)
        problems += _check_standby(index, group)
    return problems


def _check_standby(index: int, group: dict) -> list[Problem]:
    """A warm spare takes over a dead node's name, not its volumes (they attach to one node at a time)."""
    standby, volumes = group.get("standby"), group.get("volumes")
    if type(standby) is int and standby > 0 and isinstance(volumes, list) and volumes:
        return [Problem(("nodes", index, "standby"),
                        f"nodes[{index}].standby: a standby cannot take over the group's volumes "
                        "(a volume is attached to one node at a time)",
                        "remove standby and let `drbootstrap watch` resurrect the node with its volumes, "
                        "or keep the group's data off its nodes")]
    return []


def _misspells_naming_key(group: dict) -> bool:
    """A key like `hostname:` is reported as unknown with a did-you-mean; say nothing more."""
    naming = ["hostnames", "count", "hostname_pattern"]
    return any(difflib.get_close_matches(str(key), naming, n=1, cutoff=0.6) for key in group)


def _check_volumes(index: int, group: dict) -> list[Problem]:
    problems = []
    seen: dict[tuple[str, Any], int] = {}
    volumes = group.get("volumes")
    for v_index, volume in enumerate(volumes if isinstance(volumes, list) else []):
        for key in ("name", "mount"):
            value = get_in(volume, key)
            if not isinstance(value, str):
                continue
            if (key, value) in seen:
                problems.append(
                    Problem(
                        ("nodes", index, "volumes", v_index, key),
                        f"nodes[{index}].volumes[{v_index}].{key}: '{value}' "
                        f"is already used by volumes[{seen[(key, value)]}]",
                        f"give each volume its own {key}",
                    )
                )
            seen.setdefault((key, value), v_index)
    return problems


def expand_group_hostnames(group: dict) -> list[tuple[Path_, str]] | None:
    """(relative path, hostname) for each node of a raw group, its standbys last; None when it
    cannot be expanded."""
    names = group.get("hostnames")
    if "hostnames" in group:
        if not isinstance(names, list):
            return None
        return [(("hostnames", i), name) for i, name in enumerate(names)
                if is_valid(check_label, name)] + _standby_names(group)
    count, pattern = group.get("count"), group.get("hostname_pattern")
    if (type(count) is not int or not 1 <= count <= 10_000 or not isinstance(pattern, str)
            or not is_valid(check_hostname_pattern, pattern)):
        return None
    return [(("hostname_pattern",), pattern.format(n=n)) for n in range(1, count + 1)] + _standby_names(group)


def _spares(group: dict) -> int:
    standby = group.get("standby")
    return standby if type(standby) is int and 0 < standby <= MAX_STANDBY else 0


def _standby_names(group: dict) -> list[tuple[Path_, str]]:
    role = group.get("role")
    if not isinstance(role, str) or not is_valid(check_role, role):
        return []
    return [(("standby",), f"{role}-standby{n}") for n in range(1, _spares(group) + 1)]


def group_size(group: dict) -> int:
    """How many nodes a raw group names, without producing their names (0 when it cannot tell)."""
    names = group.get("hostnames")
    if "hostnames" in group:
        return len(names) + _spares(group) if isinstance(names, list) else 0
    count = group.get("count")
    return count + _spares(group) if type(count) is int and 1 <= count <= 10_000 else 0


def count_nodes(data: dict) -> int:
    """The workers of a raw spec, all groups together."""
    return sum(group_size(group) for _, group in groups_of(data))


def check_hostnames(data: dict) -> list[Problem]:
    """Every hostname, given or produced by a pattern, is a valid label and unique (master included)."""
    total = count_nodes(data)
    if total > MAX_NODES:  # checked before any name is produced: 1000 groups of count 10000
        return [
            Problem(
                ("nodes",),
                f"nodes: the groups name {total} nodes in all, over the limit of {MAX_NODES}",
                "split the environment into several specs",
                at_key=True,
            )
        ]
    problems: list[Problem] = []
    owners: dict[str, str] = {}
    master_name = get_in(data, "master", "hostname")
    if master_name is None:
        owners[DEFAULT_MASTER_HOSTNAME] = "the master (default hostname)"
    elif is_valid(check_label, master_name):
        owners[master_name] = "master.hostname"
    for index, group in groups_of(data):
        expanded = expand_group_hostnames(group) or []
        reported_pattern = False
        for relative, name in expanded:
            path = ("nodes", index) + relative
            produced = relative in (("hostname_pattern",), ("standby",))
            if relative == ("hostname_pattern",):
                if reported_pattern:
                    continue
                if not is_valid(check_label, name):
                    problems.append(
                        Problem(
                            path,
                            f"{dotted(path)}: produces '{name}', not a valid hostname (RFC 1123)",
                            "shorten the pattern or lower the count",
                        )
                    )
                    reported_pattern = True
                    continue
            if name in owners:
                what = "produces" if produced else "repeats"
                problems.append(
                    Problem(
                        path,
                        f"{dotted(path)}: {what} hostname '{name}', already used by {owners[name]}",
                        "give every node a distinct name",
                    )
                )
                reported_pattern = relative == ("hostname_pattern",)
                continue
            owners[name] = dotted(path) if not produced else f"nodes[{index}]"
    return problems + _check_fqdn_length(data, owners)


def _check_fqdn_length(data: dict, owners: dict[str, str]) -> list[Problem]:
    """hostname.domain must fit in 253 characters; reported once, at the domain."""
    domain = data.get("domain")
    if not isinstance(domain, str) or not is_valid(check_dns_name, domain) or not owners:
        return []
    longest = max(owners, key=len)
    fqdn = f"{longest}.{domain.rstrip('.')}"
    if len(fqdn) <= MAX_FQDN_LENGTH:
        return []
    return [
        Problem(
            ("domain",),
            f"domain: with hostname '{longest}' the name is {len(fqdn)} characters, over {MAX_FQDN_LENGTH}",
            "shorten the domain or the hostname",
        )
    ]


def check_after(data: dict) -> list[Problem]:
    """`after:` names existing roles, never its own, and the roles form no cycle."""
    problems = []
    roles = roles_of(data)
    edges: dict[str, list[str]] = {role: [] for role in roles}
    for index, group in groups_of(data):
        role, after = group.get("role"), group.get("after")
        for a_index, needed in enumerate(after if isinstance(after, list) else []):
            if not is_valid(check_role, needed):
                continue
            path = ("nodes", index, "after", a_index)
            if needed == role:
                problems.append(
                    Problem(path, f"{dotted(path)}: role '{role}' cannot come after itself", "remove it")
                )
            elif needed not in roles:
                close = difflib.get_close_matches(needed, sorted(roles), n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else "roles here: " + ", ".join(sorted(roles))
                problems.append(Problem(path, f"{dotted(path)}: no node group has role '{needed}'", hint))
            elif isinstance(role, str) and role in edges and roles[role] == index:
                edges[role].append(needed)
    for cycle in find_cycles(edges):
        first = min(cycle, key=lambda r: roles[r])
        loop = cycle[cycle.index(first) :] + cycle[: cycle.index(first)] + [first]
        problems.append(
            Problem(
                ("nodes", roles[first], "after"),
                f"nodes[{roles[first]}].after: roles wait for each other in a cycle: {' -> '.join(loop)}",
                "remove one of these after: entries",
                at_key=True,
            )
        )
    return problems


def find_cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """Each distinct cycle of a dependency graph once, as the list of its members in order.

    Depth-first without recursion: a chain of thousands of `after:` must not exhaust the stack.
    """
    cycles: list[list[str]] = []
    seen_members: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []
    for start in edges:
        if start in state:
            continue
        state[start] = 1
        path.append(start)
        pending = [iter(edges.get(start, []))]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                pending.pop()
                state[path.pop()] = 2
            elif state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                if frozenset(cycle) not in seen_members:
                    seen_members.add(frozenset(cycle))
                    cycles.append(list(cycle))
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                pending.append(iter(edges.get(nxt, [])))
    return cycles
