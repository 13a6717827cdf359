"""Checks of the bucket side of a spec: the `buckets:` block and each group's `dumps:`, and the
restore hooks that name a dump. On the raw YAML, like every cross-key check (semantic.py)."""

from __future__ import annotations

import difflib
import functools

from drbootstrap.spec.problems import Problem
from drbootstrap.spec.raw import get_in, groups_of, is_valid
from drbootstrap.spec.types import check_label, check_token

LOCAL_STORAGE = "local"  # libcloud's LocalStorageDriver on a directory of this controller
S3_STORAGE = "s3"  # libcloud's S3 driver, at `endpoint` when given


@functools.cache
def known_storage_drivers() -> frozenset[str]:
    """libcloud's storage provider names (imported here only: libcloud is slow to import)."""
    from libcloud.storage.types import Provider

    return frozenset(value for key, value in vars(Provider).items() if key.isupper() and isinstance(value, str))


def check_buckets(data: dict) -> list[Problem]:
    """The storage driver exists and has what it needs; dumps have a bucket; restore hooks name
    a dump of their own group; dump names are unique per group."""
    return _check_bucket_block(data) + _check_dumps(data) + _check_master_restore(data)


def _check_master_restore(data: dict) -> list[Problem]:
    """`master.restore` takes the master's state from the bucket, where a CA is kept only sealed."""
    restore = get_in(data, "master", "restore")
    if not isinstance(restore, dict) or not any(restore.get(part) is True for part in ("ca", "code")):
        return []
    block = data.get("buckets")
    if not isinstance(block, dict):
        return [Problem(("master", "restore"), "master.restore: the master's state is kept in the bucket, and "
                        "the spec has none", "add a buckets: block with an encryption_key, then run "
                        "`drbootstrap backup`", at_key=True)]
    if restore.get("ca") is True and block.get("encryption_key") is None:
        return [Problem(("master", "restore", "ca"), "master.restore.ca: the Puppet CA key is kept in the bucket "
                        "only encrypted, and buckets has no encryption_key", "add buckets.encryption_key "
                        "(a 256-bit key, by reference)", at_key=True)]
    if restore.get("ca") is True and get_in(data, "master", "puppet", "mode") == "apply":
        return [Problem(("master", "restore", "ca"), "master.restore.ca: apply mode has no Puppet CA to keep",
                        "remove master.restore.ca, or use master.puppet.mode: server", at_key=True)]
    return []


def _check_bucket_block(data: dict) -> list[Problem]:
    block = data.get("buckets")
    if not isinstance(block, dict):
        return []
    driver = block.get("driver")
    problems = []
    if isinstance(driver, str) and is_valid(check_token, driver):
        known = known_storage_drivers() | {LOCAL_STORAGE, S3_STORAGE}
        if driver not in known:
            close = difflib.get_close_matches(driver, sorted(known), n=1, cutoff=0.6)
            problems.append(Problem(("buckets", "driver"), f"buckets.driver: unknown storage driver '{driver}'",
                                    f"did you mean '{close[0]}'?" if close else "use 'local' or 's3'"))
        if driver == LOCAL_STORAGE and block.get("path") is None:
            problems.append(Problem(("buckets",), "buckets: the local storage driver needs 'path'",
                                    "add path: /var/lib/drbootstrap/buckets (a directory on this controller)",
                                    at_key=True))
        if driver != LOCAL_STORAGE and block.get("path") is not None:
            problems.append(Problem(("buckets", "path"), f"buckets.path: only the local storage driver takes a "
                                    f"path, not '{driver}'", "remove path, or use driver: local", at_key=True))
    return problems


def _check_dumps(data: dict) -> list[Problem]:
    problems = []
    has_bucket = isinstance(data.get("buckets"), dict)
    for index, group in groups_of(data):
        dumps = group.get("dumps")
        names: dict[str, int] = {}
        for d_index, dump in enumerate(dumps if isinstance(dumps, list) else []):
            name = get_in(dump, "name")
            if not is_valid(check_label, name):
                continue
            if name in names:
                problems.append(Problem(("nodes", index, "dumps", d_index, "name"),
                                        f"nodes[{index}].dumps[{d_index}].name: '{name}' is already used by "
                                        f"dumps[{names[name]}]", "give each dump its own name"))
            names.setdefault(name, d_index)
        if names and not has_bucket:
            problems.append(Problem(("nodes", index, "dumps"), f"nodes[{index}].dumps: there is no bucket to keep "
                                    "them in", "add a buckets: block (driver, container, ...)", at_key=True))
        problems += _check_restore_dumps(index, group, names)
    return problems


def _check_restore_dumps(index: int, group: dict, names: dict[str, int]) -> list[Problem]:
    problems = []
    restore = group.get("restore")
    for r_index, hook in enumerate(restore if isinstance(restore, list) else []):
        wanted = get_in(hook, "dump")
        if not is_valid(check_label, wanted) or wanted in names:
            continue
        close = difflib.get_close_matches(wanted, sorted(names), n=1, cutoff=0.6)
        hint = (f"did you mean '{close[0]}'?" if close else
                "dumps here: " + ", ".join(sorted(names)) if names else f"add it under nodes[{index}].dumps")
        problems.append(Problem(("nodes", index, "restore", r_index, "dump"),
                                f"nodes[{index}].restore[{r_index}].dump: the group has no dump '{wanted}'", hint))
    return problems
