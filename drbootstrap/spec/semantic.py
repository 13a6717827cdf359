"""Checks that span several keys: providers, image mappings, sites, the network, references.

They read the raw YAML data (not the models) so that they still run, and still report, when
some other part of the spec is malformed: every problem comes out in one run.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path

from drbootstrap.paths import project_root
from drbootstrap.spec.buckets import check_buckets
from drbootstrap.spec.groups import (
    check_after,
    check_groups,
    check_hostnames,
    count_nodes,
)
from drbootstrap.spec.models import LOCAL_PROVIDER
from drbootstrap.spec.positions import Path_
from drbootstrap.spec.problems import Problem, dotted
from drbootstrap.spec.raw import get_in, groups_of, is_valid
from drbootstrap.spec.secrets import SecretRef, SecretResolutionError
from drbootstrap.spec.types import check_label, check_token

PRIMARY_SITE = "primary"
DEFAULT_IMAGES = {"master": "master", "node": "worker"}
DEFAULT_SIZE = "small"
LOCAL_SIZES = ("small", "medium", "large")  # as drbootstrap.providers.local.driver.SIZES (libcloud-free here)
_SECRET_LOOKING_KEY = re.compile(r"(password|passwd|secret|token|api_?key|private_?key)", re.IGNORECASE)


def check_semantics(data: dict, base_dir: Path | None, resolve_secrets: bool) -> list[Problem]:
    """Every cross-key problem of a spec whose top level is a mapping."""
    problems: list[Problem] = []
    checks = (_check_providers, check_groups, check_hostnames, check_after, _check_images)
    for check in checks + (_check_local_catalog, _check_sites, check_buckets, _check_broker_node_names):
        problems += check(data)
    problems += _check_network_capacity(data)
    if resolve_secrets:
        problems += check_secret_references(data, base_dir)
    return problems


def _check_broker_node_names(data: dict) -> list[Problem]:
    """With `master.broker.replicas` above 1, role `broker` and broker1..N belong to its nodes."""
    from drbootstrap.spec.broker_nodes import BROKER_ROLE, broker_node_names

    replicas = get_in(data, "master", "broker", "replicas")
    groups = data.get("nodes")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 2 or not isinstance(groups, list):
        return []
    taken = set(broker_node_names(min(replicas, 10)))
    problems = []
    for index, group in enumerate(groups):
        if not isinstance(group, dict):
            continue
        if group.get("role") == BROKER_ROLE:
            problems.append(Problem(("nodes", index, "role"), f"role {BROKER_ROLE!r} is the broker cluster's "
                                    "(master.broker.replicas names its nodes)", "give this group another role"))
        hostnames = group.get("hostnames")
        for position, name in enumerate(hostnames if isinstance(hostnames, list) else []):
            if name in taken:
                problems.append(Problem(("nodes", index, "hostnames", position), f"hostname {name!r} is a broker "
                                        "node's (master.broker.replicas names broker1..N)", "rename this node"))
    return problems


def _provider_blocks(data: dict) -> Iterator[tuple[Path_, dict]]:
    if isinstance(data.get("provider"), dict):
        yield ("provider",), data["provider"]
    for index, site in enumerate(data.get("sites") or [] if isinstance(data.get("sites"), list) else []):
        if isinstance(get_in(site, "provider"), dict):
            yield ("sites", index, "provider"), site["provider"]


def _check_providers(data: dict) -> list[Problem]:
    problems = []
    for path, block in _provider_blocks(data):
        name = block.get("name")
        if isinstance(name, str) and is_valid(check_token, name) and name != LOCAL_PROVIDER:
            known = known_compute_providers()
            if name not in known:
                problems.append(
                    _unknown_name(
                        path + ("name",),
                        f"{dotted(path)}.name: unknown provider '{name}'",
                        name,
                        known,
                        "local",
                    )
                )
        extra = block.get("extra")
        if isinstance(name, str) and isinstance(extra, dict) and "driver_class" not in extra \
                and (name == LOCAL_PROVIDER or name in known_compute_providers()):
            problems += _unknown_extra_keys(path, name, extra)
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
    dns_provider = get_in(data, "public_dns", "provider")
    if is_valid(check_token, dns_provider) and dns_provider != "rfc2136":
        known = known_dns_providers()
        if dns_provider not in known:
            problems.append(
                _unknown_name(
                    ("public_dns", "provider"),
                    f"public_dns.provider: unknown DNS provider '{dns_provider}'",
                    dns_provider,
                    known,
                    "rfc2136",
                )
            )
    return problems


def _unknown_extra_keys(path: Path_, name: str, extra: dict) -> list[Problem]:
    """`extra:` keys neither drbootstrap nor the provider's driver takes (libcloud's constructors
    drop unknown keywords silently: a typo would be lost without a word)."""
    from drbootstrap.providers.registry import provider_class

    accepted = provider_class(name).accepted_extra_keys(name)
    if accepted is None:
        return []
    problems = []
    for key in extra:
        if isinstance(key, str) and key not in accepted and not _SECRET_LOOKING_KEY.search(key):
            close = difflib.get_close_matches(key, sorted(accepted), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else \
                f"{name}'s driver takes: {', '.join(sorted(k for k in accepted if k.startswith('ex_'))[:8])}, ..."
            problems.append(Problem(path + ("extra", key),
                                    f"{dotted(path)}.extra.{key}: provider {name} takes no such setting", hint,
                                    at_key=True))
    return problems


def _unknown_name(path: Path_, message: str, name: str, known: frozenset[str], default: str) -> Problem:
    close = difflib.get_close_matches(name, sorted(known | {default}), n=1, cutoff=0.6)
    hint = (
        f"did you mean '{close[0]}'?" if close else f"use '{default}' or a libcloud provider name such as ec2"
    )
    return Problem(path, message, hint)


@functools.cache
def known_compute_providers() -> frozenset[str]:
    """libcloud's compute provider names (imported here only: libcloud is slow to import)."""
    from libcloud.compute.types import Provider

    return frozenset(
        value for key, value in vars(Provider).items() if key.isupper() and isinstance(value, str)
    )


@functools.cache
def known_dns_providers() -> frozenset[str]:
    from libcloud.dns.types import Provider

    return frozenset(
        value for key, value in vars(Provider).items() if key.isupper() and isinstance(value, str)
    )


def _used_images_and_sizes(data: dict) -> list[tuple[str, str, Path_]]:
    """(kind "images"/"sizes", logical name, where it is used) for the master and every group."""
    used: list[tuple[str, str, Path_]] = []
    master = data.get("master")
    if not isinstance(master, dict):
        master = {}
    used.append(("images", master.get("image", DEFAULT_IMAGES["master"]), ("master", "image")))
    used.append(("sizes", master.get("size", DEFAULT_SIZE), ("master", "size")))
    for index, group in groups_of(data):
        used.append(("images", group.get("image", DEFAULT_IMAGES["node"]), ("nodes", index, "image")))
        used.append(("sizes", group.get("size", DEFAULT_SIZE), ("nodes", index, "size")))
        fallbacks = group.get("fallback_sizes")
        if isinstance(fallbacks, list):
            used += [("sizes", size, ("nodes", index, "fallback_sizes", n)) for n, size in enumerate(fallbacks)]
    return [(kind, name, where) for kind, name, where in used if is_valid(check_token, name)]


def _check_local_catalog(data: dict) -> list[Problem]:
    """On the local cloud, images are directories under images/ and sizes are small/medium/large."""
    images_dir = project_root() / "images"
    if not images_dir.is_dir():
        return []  # an installed tree without images/: the local driver says so at launch
    catalog = {"images": {d.name for d in images_dir.iterdir() if d.is_dir()}, "sizes": set(LOCAL_SIZES)}
    problems = []
    for _block_path, block in _provider_blocks(data):
        if block.get("name") != LOCAL_PROVIDER:
            continue
        for kind, logical, where in _used_images_and_sizes(data):
            mapping = block.get(kind)
            if not isinstance(mapping, dict):
                mapping = {}
            provider_id = mapping.get(logical, logical)
            if provider_id in catalog[kind]:
                continue
            singular = kind[:-1]
            close = difflib.get_close_matches(str(provider_id), sorted(catalog[kind]), n=1, cutoff=0.6)
            known = ", ".join(sorted(catalog[kind]))
            hint = f"did you mean '{close[0]}'?" if close else f"use one of {known}"
            message = f"{dotted(where)}: the local cloud has no {singular} '{provider_id}'"
            problems.append(Problem(where, message, hint))
    return _unique(problems)


def _check_images(data: dict) -> list[Problem]:
    """Off the local cloud, every logical image and size used must map to a provider id."""
    used = _used_images_and_sizes(data)
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
        name = get_in(site, "name")
        if not is_valid(check_label, name):
            continue
        if name in names:
            problems.append(
                Problem(
                    ("sites", index, "name"),
                    f"sites[{index}].name: '{name}' is already used by {names[name]}",
                    f"give each site its own name ('{PRIMARY_SITE}' means the main provider)",
                )
            )
        names.setdefault(name, f"sites[{index}]")
    records = get_in(data, "public_dns", "records")
    for r_index, record in enumerate(records if isinstance(records, list) else []):
        targets = get_in(record, "targets")
        for site_name in targets if isinstance(targets, dict) else {}:
            if site_name not in names:
                path = ("public_dns", "records", r_index, "targets", site_name)
                problems.append(
                    Problem(
                        path,
                        f"{dotted(path[:-1])}: no site named '{site_name}'",
                        "use 'primary' or a name from sites:",
                        at_key=True,
                    )
                )
    return problems


def _check_network_capacity(data: dict) -> list[Problem]:
    network = get_in(data, "provider", "network")
    if get_in(data, "provider", "name") != LOCAL_PROVIDER or not isinstance(network, str):
        return []
    try:
        addresses = ipaddress.IPv4Network(network).num_addresses - 3  # network, bridge, broadcast
    except ValueError:
        return []
    needed = 1 + count_nodes(data)
    if needed <= addresses:
        return []
    return [
        Problem(
            ("provider", "network"),
            f"provider.network: {network} has room for {addresses} nodes, the spec has {needed}",
            "use a larger network, e.g. a /24",
        )
    ]


def secret_paths(data: dict) -> Iterator[Path_]:
    """Where credential references may be written in a raw spec."""
    for path, block in _provider_blocks(data):
        credentials = block.get("credentials")
        for key in credentials if isinstance(credentials, dict) else {}:
            yield path + ("credentials", key)
    yield ("security", "psk")
    yield ("master", "dynamic_dns", "tsig_secret")
    credentials = get_in(data, "public_dns", "credentials")
    for key in credentials if isinstance(credentials, dict) else {}:
        yield ("public_dns", "credentials", key)
    credentials = get_in(data, "buckets", "credentials")
    for key in credentials if isinstance(credentials, dict) else {}:
        yield ("buckets", "credentials", key)
    yield ("buckets", "encryption_key")


def check_secret_references(data: dict, base_dir: Path | None) -> list[Problem]:
    """Each reference whose variable or file is missing, empty or unreadable."""
    problems = []
    for path in secret_paths(data):
        text = get_in(data, *path)
        reference = SecretRef.parse(text, base_dir) if isinstance(text, str) else None
        if reference is None:
            continue  # absent, or a literal secret (reported by the model)
        try:
            reference.resolve()
        except SecretResolutionError as error:
            problems.append(Problem(path, f"{dotted(path)}: {error.message}", error.hint or ""))
    return problems
