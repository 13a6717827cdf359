"""Checks that span several keys: names, patterns, the `after:` graph, providers, references.

They read the raw YAML data (not the models) so that they still run, and still report, when
some other part of the spec is malformed: every problem comes out in one run.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic_core import PydanticCustomError

from drbootstrap.spec.models import LOCAL_PROVIDER
from drbootstrap.spec.positions import Path_
from drbootstrap.spec.problems import Problem, dotted
from drbootstrap.spec.secrets import SecretRef, SecretResolutionError
from drbootstrap.spec.types import check_hostname_pattern, check_label, check_role, check_token

PRIMARY_SITE = "primary"
DEFAULT_MASTER_HOSTNAME = "controller"
DEFAULT_IMAGES = {"master": "master", "node": "worker"}
DEFAULT_SIZE = "small"
_SECRET_LOOKING_KEY = re.compile(r"(password|passwd|secret|token|api_?key|private_?key)", re.IGNORECASE)


def check_semantics(data: dict, base_dir: Path | None, resolve_secrets: bool) -> list[Problem]:
    """Every cross-key problem of a spec whose top level is a mapping."""
    problems: list[Problem] = []
    for check in (_check_providers, _check_groups, _check_hostnames, _check_after, _check_images, _check_sites):
        problems += check(data)
    problems += _check_network_capacity(data)
    if resolve_secrets:
        problems += check_secret_references(data, base_dir)
    return problems


def _get(data: Any, *path: str | int) -> Any:
    for part in path:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return None
        elif not isinstance(data, dict):
            return None
        data = data[part] if isinstance(part, int) else data.get(part)
    return data


def _groups(data: dict) -> Iterator[tuple[int, dict]]:
    groups = data.get("nodes")
    if isinstance(groups, list):
        yield from ((i, g) for i, g in enumerate(groups) if isinstance(g, dict))


def _valid(check: Callable[[str], str], value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        check(value)
    except PydanticCustomError:
        return False
    return True


def _roles(data: dict) -> dict[str, int]:
    """Valid role name -> index of the first group that has it."""
    roles: dict[str, int] = {}
    for index, group in _groups(data):
        role = group.get("role")
        if _valid(check_role, role):
            roles.setdefault(role, index)
    return roles


def _provider_blocks(data: dict) -> Iterator[tuple[Path_, dict]]:
    if isinstance(data.get("provider"), dict):
        yield ("provider",), data["provider"]
    for index, site in enumerate(data.get("sites") or [] if isinstance(data.get("sites"), list) else []):
        if isinstance(_get(site, "provider"), dict):
            yield ("sites", index, "provider"), site["provider"]


def _check_providers(data: dict) -> list[Problem]:
    problems = []
    for path, block in _provider_blocks(data):
        name = block.get("name")
        if _valid(check_token, name) and name != LOCAL_PROVIDER:
            known = known_compute_providers()
            if name not in known:
                problems.append(_unknown_name(path + ("name",), f"{dotted(path)}.name: unknown provider '{name}'", name, known, "local"))
        extra = block.get("extra")
        for key in extra if isinstance(extra, dict) else {}:
            if _SECRET_LOOKING_KEY.search(str(key)):
                problems.append(
                    Problem(
                        path + ("extra", key),
                        f"{dotted(path)}.extra.{key} looks like a secret",
                        f"put it under {dotted(path)}.credentials as a ${{env:...}} or ${{file:...}} reference",
                        at_key=True,
                    )
                )
    dns_provider = _get(data, "public_dns", "provider")
    if _valid(check_token, dns_provider) and dns_provider != "rfc2136":
        known = known_dns_providers()
        if dns_provider not in known:
            problems.append(
                _unknown_name(("public_dns", "provider"), f"public_dns.provider: unknown DNS provider '{dns_provider}'", dns_provider, known, "rfc2136")
            )
    return problems


def _unknown_name(path: Path_, message: str, name: str, known: frozenset[str], default: str) -> Problem:
    close = difflib.get_close_matches(name, sorted(known | {default}), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"use '{default}' or a libcloud provider name such as ec2"
    return Problem(path, message, hint)


@functools.cache
def known_compute_providers() -> frozenset[str]:
    """libcloud's compute provider names (imported here only: libcloud is slow to import)."""
    from libcloud.compute.types import Provider

    return frozenset(value for key, value in vars(Provider).items() if key.isupper() and isinstance(value, str))


@functools.cache
def known_dns_providers() -> frozenset[str]:
    from libcloud.dns.types import Provider

    return frozenset(value for key, value in vars(Provider).items() if key.isupper() and isinstance(value, str))


def _check_groups(data: dict) -> list[Problem]:
    problems = []
    seen_roles: dict[str, int] = {}
    for index, group in _groups(data):
        role = group.get("role")
        if _valid(check_role, role):
            if role in seen_roles:
                problems.append(
                    Problem(
                        ("nodes", index, "role"),
                        f"nodes[{index}].role: role '{role}' is already used by nodes[{seen_roles[role]}]",
                        "merge the two groups or rename one role",
                    )
                )
            seen_roles.setdefault(role, index)
        has_list, has_count, has_pattern = ("hostnames" in group, "count" in group, "hostname_pattern" in group)
        where = ("nodes", index)
        if has_list and (has_count or has_pattern):
            key = "count" if has_count else "hostname_pattern"
            problems.append(
                Problem(where + (key,), f"nodes[{index}]: give either hostnames or count + hostname_pattern, not both",
                        f"remove '{key}' or 'hostnames'", at_key=True)
            )
        elif not has_list and not has_count and not has_pattern and not _misspells_naming_key(group):
            problems.append(
                Problem(where, f"nodes[{index}]: has no hostnames", "add hostnames: [web01] or count: 2 with hostname_pattern: web{n:02}", at_key=True)
            )
        elif not has_list and has_count != has_pattern:
            present, missing = ("count", "hostname_pattern") if has_count else ("hostname_pattern", "count")
            problems.append(
                Problem(where + (present,), f"nodes[{index}]: '{present}' needs '{missing}'", f"add {missing}: ...", at_key=True)
            )
        problems += _check_volumes(index, group)
    return problems


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
            value = _get(volume, key)
            if not isinstance(value, str):
                continue
            if (key, value) in seen:
                problems.append(
                    Problem(
                        ("nodes", index, "volumes", v_index, key),
                        f"nodes[{index}].volumes[{v_index}].{key}: '{value}' is already used by volumes[{seen[(key, value)]}]",
                        f"give each volume its own {key}",
                    )
                )
            seen.setdefault((key, value), v_index)
    return problems


def expand_group_hostnames(group: dict) -> list[tuple[Path_, str]] | None:
    """(relative path, hostname) for each node of a raw group; None when it cannot be expanded."""
    names = group.get("hostnames")
    if "hostnames" in group:
        if not isinstance(names, list):
            return None
        return [(("hostnames", i), name) for i, name in enumerate(names) if _valid(check_label, name)]
    count, pattern = group.get("count"), group.get("hostname_pattern")
    if type(count) is not int or not 1 <= count <= 10_000 or not _valid(check_hostname_pattern, pattern):
        return None
    return [(("hostname_pattern",), pattern.format(n=n)) for n in range(1, count + 1)]


def _check_hostnames(data: dict) -> list[Problem]:
    problems: list[Problem] = []
    owners: dict[str, str] = {}
    master_name = _get(data, "master", "hostname")
    if master_name is None:
        owners[DEFAULT_MASTER_HOSTNAME] = "the master (default hostname)"
    elif _valid(check_label, master_name):
        owners[master_name] = "master.hostname"
    for index, group in _groups(data):
        expanded = expand_group_hostnames(group) or []
        reported_pattern = False
        for relative, name in expanded:
            path = ("nodes", index) + relative
            if relative == ("hostname_pattern",):
                if reported_pattern:
                    continue
                if not _valid(check_label, name):
                    problems.append(
                        Problem(path, f"{dotted(path)}: produces '{name}', not a valid hostname (RFC 1123)",
                                "shorten the pattern or lower the count")
                    )
                    reported_pattern = True
                    continue
            if name in owners:
                what = "produces" if relative == ("hostname_pattern",) else "repeats"
                problems.append(
                    Problem(path, f"{dotted(path)}: {what} hostname '{name}', already used by {owners[name]}",
                            "give every node a distinct name")
                )
                reported_pattern = relative == ("hostname_pattern",)
                continue
            owners[name] = dotted(path) if relative != ("hostname_pattern",) else f"nodes[{index}]"
    return problems


def _check_after(data: dict) -> list[Problem]:
    problems = []
    roles = _roles(data)
    edges: dict[str, list[str]] = {role: [] for role in roles}
    for index, group in _groups(data):
        role, after = group.get("role"), group.get("after")
        for a_index, needed in enumerate(after if isinstance(after, list) else []):
            if not _valid(check_role, needed):
                continue
            path = ("nodes", index, "after", a_index)
            if needed == role:
                problems.append(Problem(path, f"{dotted(path)}: role '{role}' cannot come after itself", "remove it"))
            elif needed not in roles:
                close = difflib.get_close_matches(needed, sorted(roles), n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else "roles here: " + ", ".join(sorted(roles))
                problems.append(Problem(path, f"{dotted(path)}: no node group has role '{needed}'", hint))
            elif isinstance(role, str) and role in edges and roles[role] == index:
                edges[role].append(needed)
    for cycle in find_cycles(edges):
        first = min(cycle, key=lambda r: roles[r])
        loop = cycle[cycle.index(first):] + cycle[: cycle.index(first)] + [first]
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
    """Each distinct cycle of a dependency graph once, as the list of its members in order."""
    cycles: list[list[str]] = []
    seen_members: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):]
                if frozenset(cycle) not in seen_members:
                    seen_members.add(frozenset(cycle))
                    cycles.append(list(cycle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node)
    return cycles


def _check_images(data: dict) -> list[Problem]:
    """Off the local cloud, every logical image and size used must map to a provider id."""
    used: list[tuple[str, str, Path_]] = []  # (kind, logical name, where it is used)
    master = data.get("master") if isinstance(data.get("master"), dict) else {}
    used.append(("images", master.get("image", DEFAULT_IMAGES["master"]), ("master", "image")))
    used.append(("sizes", master.get("size", DEFAULT_SIZE), ("master", "size")))
    for index, group in _groups(data):
        used.append(("images", group.get("image", DEFAULT_IMAGES["node"]), ("nodes", index, "image")))
        used.append(("sizes", group.get("size", DEFAULT_SIZE), ("nodes", index, "size")))
    problems = []
    for block_path, block in _provider_blocks(data):
        name = block.get("name")
        if not isinstance(name, str) or name == LOCAL_PROVIDER or name not in known_compute_providers():
            continue  # local needs no mapping; an unknown provider is reported on its own
        for kind, logical, where in used:
            mapping = block.get(kind)
            if not isinstance(logical, str) or (isinstance(mapping, dict) and logical in mapping):
                continue
            if mapping is not None and not isinstance(mapping, dict):
                continue  # the type error is reported already
            singular = kind[:-1]
            problems.append(
                Problem(
                    block_path + ((kind,) if isinstance(mapping, dict) else ()),
                    f"{dotted(block_path)}: no {singular} id for {singular} '{logical}' used by {dotted(where)}",
                    f"add {dotted(block_path)}.{kind}.{logical}: <provider {singular} id>",
                    at_key=True,
                )
            )
    return _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, result = set(), []
    for problem in problems:
        key = (problem.path, problem.message.split(" used by ")[0])
        if key not in seen:
            seen.add(key)
            result.append(problem)
    return result


def _check_sites(data: dict) -> list[Problem]:
    problems = []
    sites = data.get("sites")
    names = {PRIMARY_SITE: "the primary provider"}
    for index, site in enumerate(sites if isinstance(sites, list) else []):
        name = _get(site, "name")
        if not _valid(check_label, name):
            continue
        if name in names:
            problems.append(
                Problem(("sites", index, "name"), f"sites[{index}].name: '{name}' is already used by {names[name]}",
                        f"give each site its own name ('{PRIMARY_SITE}' means the main provider)")
            )
        names.setdefault(name, f"sites[{index}]")
    records = _get(data, "public_dns", "records")
    for r_index, record in enumerate(records if isinstance(records, list) else []):
        targets = _get(record, "targets")
        for site_name in targets if isinstance(targets, dict) else {}:
            if site_name not in names:
                path = ("public_dns", "records", r_index, "targets", site_name)
                problems.append(
                    Problem(path, f"{dotted(path[:-1])}: no site named '{site_name}'",
                            "use 'primary' or a name from sites:", at_key=True)
                )
    return problems


def _check_network_capacity(data: dict) -> list[Problem]:
    network = _get(data, "provider", "network")
    if _get(data, "provider", "name") != LOCAL_PROVIDER or not isinstance(network, str):
        return []
    try:
        addresses = ipaddress.IPv4Network(network).num_addresses - 3  # network, bridge, broadcast
    except ValueError:
        return []
    needed = 1 + sum(len(expand_group_hostnames(group) or []) for _, group in _groups(data))
    if needed <= addresses:
        return []
    return [Problem(("provider", "network"), f"provider.network: {network} has room for {addresses} nodes, the spec has {needed}",
                    "use a larger network, e.g. a /24")]


def secret_paths(data: dict) -> Iterator[Path_]:
    """Where credential references may be written in a raw spec."""
    for path, block in _provider_blocks(data):
        credentials = block.get("credentials")
        for key in credentials if isinstance(credentials, dict) else {}:
            yield path + ("credentials", key)
    yield ("security", "psk")
    yield ("master", "dynamic_dns", "tsig_secret")
    credentials = _get(data, "public_dns", "credentials")
    for key in credentials if isinstance(credentials, dict) else {}:
        yield ("public_dns", "credentials", key)


def check_secret_references(data: dict, base_dir: Path | None) -> list[Problem]:
    """Each reference whose variable or file is missing, empty or unreadable."""
    problems = []
    for path in secret_paths(data):
        text = _get(data, *path)
        reference = SecretRef.parse(text, base_dir) if isinstance(text, str) else None
        if reference is None:
            continue  # absent, or a literal secret (reported by the model)
        try:
            reference.resolve()
        except SecretResolutionError as error:
            problems.append(Problem(path, f"{dotted(path)}: {error.message}", error.hint or ""))
    return problems
