"""Application dumps in the spec's bucket (`buckets:`, each group's `dumps:`), on the controller.

`take_dumps` has each node's dumps agent run its dump commands and streams every dump to the
bucket one chunk at a time (the controller never holds more than a chunk; the nodes never hold the
bucket's credentials), with its sha256, size and node in the object's metadata and in a record
object beside it (`<key>.json`: what the catalog lists on every driver, and the mark that the
dump is complete). `restore_dump` (the restore step's `{dump: NAME}` hook) has the node fetch the
newest dump (or the newest at `--as-of`) through a short-lived URL, refuse it unless its digest
matches, and run the restore command on it; with `fallback: older` a refused dump gives way to
the next older one. `prune_dumps` applies `buckets.retention`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from drbootstrap.backups.catalog import BackupRecord
from drbootstrap.errors import DrbError, ProviderError

if TYPE_CHECKING:
    from drbootstrap.backups.object_store import ObjectStore
    from drbootstrap.executor.context import NodeRuntime, RunContext
    from drbootstrap.journal import Fact
    from drbootstrap.plan import PlannedNode
    from drbootstrap.spec.models import DumpSpec, EnvironmentSpec
    from drbootstrap.spec.operations import BucketSpec

CHUNK_BYTES = 128 * 1024  # one `dumps.read`: what the controller holds of a dump at a time
RECORD_SUFFIX = ".json"
DUMP_SUFFIX = ".dump"


@dataclass(frozen=True)
class DumpFailure:
    """A dump that was not taken: which node, which dump, and why (one line)."""

    hostname: str
    name: str
    reason: str

    def line(self) -> str:
        return f"{self.hostname}: dump {self.name}: {self.reason}"


@dataclass(frozen=True)
class DumpsTaken:
    """What `take_dumps` did: the good records written, and the dumps that failed (nothing good kept)."""

    records: list[BackupRecord]
    failures: list[DumpFailure]


class DumpRefused(DrbError):
    """A node refused a dump's bytes (digest or size not the recorded ones)."""


# ---- taking -------------------------------------------------------------------------------------


class AgentCalls(Protocol):
    """The broker as `backup` uses it (executor.backends.RpcFleet)."""

    def call(self, identity: str, agent: str, action: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        """agent.action on one node; its reply data. Raises a DrbError on silence or a failed status."""


def take_dumps(spec: EnvironmentSpec, fleet: AgentCalls, *, hostnames: frozenset[str] = frozenset(),
               rpc_timeout: float = 60.0) -> DumpsTaken:
    """Every `dumps:` entry of every node (of HOSTNAMES only, when given), one after the other,
    into the spec's bucket. A dump that fails leaves a record marked not good, saying why."""
    from drbootstrap.plan import build_plan

    wanted = [(node, dump) for node in build_plan(spec).nodes() if node.group is not None
              and (not hostnames or node.hostname in hostnames) for dump in node.group.dumps]
    if not wanted or spec.buckets is None:
        return DumpsTaken([], [])
    from drbootstrap.backups.object_store import ObjectStore

    store = ObjectStore(spec.buckets)
    records, failures = [], []
    for node, dump in wanted:
        try:
            records.append(take_one(spec.environment, fleet, store, node, dump, rpc_timeout))
        except DrbError as error:
            failure = DumpFailure(node.hostname, dump.name, reason_of(error).removeprefix(f"dump {dump.name}: "))
            failures.append(failure)
            write_failed_record(spec.environment, store, node, dump, failure.reason)
    return DumpsTaken(records, failures)


def take_one(environment: str, fleet: AgentCalls, store: ObjectStore, node: PlannedNode, dump: DumpSpec,
             rpc_timeout: float, *, kind: Literal["dump", "master"] = "dump") -> BackupRecord:
    """NODE's dump DUMP, streamed to the bucket (sealed when the bucket has a key) and checked; its record."""
    created = time.time()
    taken = fleet.call(node.fqdn, "dumps", "take", {"name": dump.name}, dump.timeout_seconds + rpc_timeout)
    job, digest, size = str(taken["job"]), str(taken["sha256"]), int(taken["size"])
    key = dump_key(store.spec, environment, node.hostname, dump.name, created)
    streamed = hashlib.sha256()
    counted = [0]

    def pieces() -> Iterator[tuple[bytes, bool]]:
        while True:
            reply = fleet.call(node.fqdn, "dumps", "read", {"job": job, "offset": counted[0], "length": CHUNK_BYTES},
                               rpc_timeout)
            chunk = base64.b64decode(str(reply.get("data", "")))
            streamed.update(chunk)
            counted[0] += len(chunk)
            last = bool(reply.get("eof")) or not chunk
            yield chunk, last
            if last:
                return

    wrapped = ""
    if store.spec.encryption_key is not None:
        from drbootstrap.backups.sealing import new_data_key, parse_key, seal

        data_key, wrapped = new_data_key(parse_key(store.spec.encryption_key.resolve()))
        chunks = seal(pieces(), data_key)
    else:
        chunks = (chunk for chunk, _ in pieces() if chunk)

    meta = {"sha256": digest, "size": str(size), "node": node.hostname, "environment": environment,
            "dump": dump.name}
    try:
        store.upload_stream(key, chunks, meta)
    finally:
        with contextlib.suppress(DrbError):
            fleet.call(node.fqdn, "dumps", "discard", {"job": job}, rpc_timeout)
    if streamed.hexdigest() != digest or counted[0] != size:
        store.delete(key)
        raise DumpRefused(f"the {counted[0]} bytes read differ from the {size} bytes the node digested")
    record = BackupRecord(id=key, kind=kind, environment=environment, hostname=node.hostname,
                          name=dump.name, created_at=created, size_bytes=size, manifest_digest=digest,
                          location=store.location)
    store.put_bytes(key + RECORD_SUFFIX, record_json(record, sealed=wrapped))
    return record


def write_failed_record(environment: str, store: ObjectStore, node: PlannedNode, dump: DumpSpec,
                        reason: str, *, kind: Literal["dump", "master"] = "dump") -> None:
    created = time.time()
    key = dump_key(store.spec, environment, node.hostname, dump.name, created)
    record = BackupRecord(id=key, kind=kind, environment=environment, hostname=node.hostname,
                          name=dump.name, created_at=created, size_bytes=None, manifest_digest=None,
                          location=store.location, good=False)
    with contextlib.suppress(DrbError):  # the failure is reported either way
        store.put_bytes(key + RECORD_SUFFIX, record_json(record, reason=reason))


def reason_of(error: DrbError) -> str:
    """One line: the agent's message and the last line of the command's output."""
    message = error.message.split(" failed: ", 1)[-1]
    tail = str((getattr(error, "data", None) or {}).get("output", "")).strip().splitlines()
    return f"{message} ({tail[-1][:200]})" if tail else message


def dump_key(bucket: BucketSpec, environment: str, hostname: str, name: str, created: float) -> str:
    """Where a dump lives in the bucket: sortable by time under its environment, node and name."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(created)) + f"{int(created * 1000) % 1000:03d}Z"
    return f"{bucket.prefix}/{environment}/{hostname}/{name}/{stamp}{DUMP_SUFFIX}"


def record_json(record: BackupRecord, *, reason: str = "", sealed: str = "") -> bytes:
    """The record beside a dump; SEALED: its data key wrapped by the spec's key, when encrypted."""
    data: dict[str, Any] = {
        "kind": record.kind, "environment": record.environment, "hostname": record.hostname,
        "name": record.name, "created_at": record.created_at, "size_bytes": record.size_bytes,
        "sha256": record.manifest_digest, "good": record.good, "verified_at": record.verified_at,
        "verified_ok": record.verified_ok}
    if reason:
        data["reason"] = reason
    if sealed:
        data["sealed"] = sealed
    return json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"


# ---- the catalog --------------------------------------------------------------------------------


def list_dumps(bucket: BucketSpec, environment: str) -> list[BackupRecord]:
    """Every dump record of ENVIRONMENT in the bucket, oldest first (good or not)."""
    from drbootstrap.backups.object_store import ObjectStore

    return records_in(ObjectStore(bucket), environment)


def records_in(store: ObjectStore, environment: str) -> list[BackupRecord]:
    found = []
    for obj in store.list(f"{store.spec.prefix}/{environment}/"):
        if not obj.key.endswith(DUMP_SUFFIX + RECORD_SUFFIX):
            continue
        record = _parse_record(obj.key[: -len(RECORD_SUFFIX)], store.read_bytes(obj.key), store.location)
        if record is not None and record.environment == environment:
            found.append(record)
    return sorted(found, key=lambda r: r.created_at)


def _parse_record(key: str, raw: bytes, location: str) -> BackupRecord | None:
    """The record a `<key>.json` holds; None when it is not one of ours (never guess)."""
    try:
        data = json.loads(raw)
        kind: Literal["dump", "master"] = "master" if data.get("kind") == "master" else "dump"
        return BackupRecord(id=key, kind=kind, environment=str(data["environment"]),
                            hostname=str(data["hostname"]), name=str(data["name"]),
                            created_at=float(data["created_at"]),
                            size_bytes=int(data["size_bytes"]) if data.get("size_bytes") is not None else None,
                            manifest_digest=data.get("sha256") or None,
                            verified_at=data.get("verified_at"), verified_ok=data.get("verified_ok"),
                            location=location, good=data.get("good") is True)
    except (ValueError, KeyError, TypeError):
        return None


def prune_dumps(bucket: BucketSpec, environment: str, *, now: float | None = None) -> list[BackupRecord]:
    """Delete what `buckets.retention` allows, per node and dump: beyond the newest `keep_last`, or
    older than `max_age_days`; never the newest good dump. The records deleted."""
    from drbootstrap.backups.object_store import ObjectStore

    store = ObjectStore(bucket)
    now = time.time() if now is None else now
    policy = bucket.retention
    by_dump: dict[tuple[str, str], list[BackupRecord]] = {}
    for record in records_in(store, environment):
        by_dump.setdefault((record.hostname, record.name), []).append(record)
    deleted = []
    for records in by_dump.values():
        newest_first = sorted(records, key=lambda r: r.created_at, reverse=True)
        keep = next((r for r in newest_first if r.good), None)
        for index, record in enumerate(newest_first):
            too_many = policy.keep_last is not None and index >= policy.keep_last
            too_old = policy.max_age_days is not None and now - record.created_at > policy.max_age_days * 86_400
            if record is not keep and (too_many or too_old):
                store.delete(record.id)
                store.delete(record.id + RECORD_SUFFIX)
                deleted.append(record)
    return deleted


# ---- restoring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DumpRestored:
    record: BackupRecord
    refused: list[str]  # "<key>: <why>" of newer dumps refused before it

    def facts(self, now: float) -> dict[str, Fact]:
        """The restore step's facts for the report (the RPO achieved), as the volumes step leaves them."""
        from drbootstrap.backups.restored import VolumeRestoreFacts

        return VolumeRestoreFacts(self.record.name, self.record.id, int(self.record.created_at), int(now), "ok",
                                  ",".join(line.split(": ", 1)[0] for line in self.refused)).facts()

    def detail(self, now: float) -> str:
        age = _age(now - self.record.created_at)
        refused = "".join(f"; refused {line}" for line in self.refused)
        return (f"dump {self.record.name} {self.record.id.rsplit('/', 1)[-1]} from {age} ago restored, "
                f"sha256 {(self.record.manifest_digest or '')[:12]} matched{refused}")


def restore_dump(ctx: RunContext, node: NodeRuntime, name: str) -> DumpRestored | None:
    """The node's restore of its dump NAME: newest first (at or before `--as-of`), each fetched
    through a short-lived URL and checked by digest on the node; refused ones give way to older
    ones when the dump's `fallback` is `older`. Raises StepFailed naming every dump refused.
    None when the bucket has never held one (the environment's first build, without --as-of)."""
    from drbootstrap.backups.object_store import ObjectStore
    from drbootstrap.executor.outcomes import StepFailed

    assert ctx.spec.buckets is not None and node.planned.group is not None  # validated with the spec
    dump = node.planned.group.dump(name)
    store = ObjectStore(ctx.spec.buckets)
    source = ctx.options.backup_environment or ctx.spec.environment
    as_of = ctx.options.as_of
    ever = [r for r in records_in(store, source) if r.hostname == node.hostname and r.name == name]
    if not ever and as_of is None:
        return None  # a first build: nothing was ever dumped, nothing to restore (the detail says so)
    candidates = [r for r in reversed(ever) if r.good and (as_of is None or r.created_at <= as_of)]
    if not candidates:
        when = f" at or before {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(as_of))} UTC" if as_of else ""
        raise _no_dump(f"{node.hostname}: no good dump {name} of environment {source} in "
                       f"{store.location}{when}", hint="run `drbootstrap backup` first, or pick another --as-of")
    refused: list[str] = []
    for record in candidates:
        try:
            _restore_one(ctx, store, node, dump, record)
        except DumpRefused as error:
            refused.append(f"{record.id}: {error.message}")
            _mark_verified(store, record, ok=False)
            if dump.fallback != "older":
                raise StepFailed(f"{node.hostname}: dump {name} {record.id} refused: {error.message}",
                                 hint="set fallback: older on the dump to restore the next older one") from None
            continue
        _mark_verified(store, record, ok=True)
        return DumpRestored(record, refused)
    raise _no_dump(f"{node.hostname}: every dump {name} was refused: " + "; ".join(refused),
                   hint="the bucket's objects are damaged: restore from another backup")


def _restore_one(ctx: RunContext, store: ObjectStore, node: NodeRuntime, dump: DumpSpec,
                 record: BackupRecord) -> None:
    from drbootstrap.executor.backends import RpcCallFailed
    from drbootstrap.executor.outcomes import StepFailed

    seconds = store.spec.signed_url_seconds
    request: dict[str, Any] = {"name": dump.name, "sha256": record.manifest_digest, "size": record.size_bytes}
    sealed = json.loads(store.read_bytes(record.id + RECORD_SUFFIX)).get("sealed")
    if sealed and store.spec.encryption_key is not None:
        from drbootstrap.backups.sealing import parse_key, unwrap_data_key

        # That one dump's data key, never the spec's key: the node can open this object and no other.
        request["key"] = base64.b64encode(unwrap_data_key(parse_key(store.spec.encryption_key.resolve()),
                                                          sealed)).decode()
    elif sealed:
        raise StepFailed(f"{node.hostname}: dump {dump.name} {record.id} is encrypted and the spec names no "
                         "buckets.encryption_key", hint="add the key it was sealed with")
    with _node_url(ctx, store, record, seconds) as url:
        try:
            ctx.fleet().call(node.fqdn, "dumps", "restore", {**request, "url": url},
                             2 * dump.timeout_seconds + ctx.options.rpc_timeout)
        except RpcCallFailed as error:
            why = error.message.split(" failed: ", 1)[-1]
            if error.data.get("refused") == "digest":
                raise DumpRefused(why.split("refused, ", 1)[-1]) from None
            raise StepFailed(f"{node.hostname}: dump {dump.name} {record.id}: {why}", log_tail=error.log_tail) from None


@contextlib.contextmanager
def _node_url(ctx: RunContext, store: ObjectStore, record: BackupRecord, seconds: int) -> Iterator[str]:
    """A URL the node reads the dump from: signed by the store, else served once by this controller."""
    signed = store.signed_get_url(record.id, seconds)
    if signed is not None:
        yield signed
        return
    address = ctx.provider.controller_address_for_nodes()
    if address is None:
        raise ProviderError(f"bucket driver {store.spec.driver} signs no URLs and the nodes cannot reach this "
                            "controller to fetch a dump", hint="keep the dumps in an S3 bucket (driver: s3)")
    from drbootstrap.backups.object_server import serve_once

    with serve_once(store, record.id, address, seconds) as url:
        yield url


def _mark_verified(store: ObjectStore, record: BackupRecord, *, ok: bool) -> None:
    """Keep the restore's outcome in the dump's record (everything else in it unchanged)."""
    with contextlib.suppress(DrbError, ValueError):  # the restore's outcome stands whether or not this is kept
        data = json.loads(store.read_bytes(record.id + RECORD_SUFFIX))
        data.update(verified_at=time.time(), verified_ok=ok)
        store.put_bytes(record.id + RECORD_SUFFIX, json.dumps(data, indent=1, sort_keys=True).encode() + b"\n")


def _no_dump(message: str, *, hint: str) -> DrbError:
    """No dump can be restored: the backup error (exit 13)."""
    from drbootstrap.errors import BackupError

    return BackupError(message, hint=hint)


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86_400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86_400} days"


def dumps_in_spec(spec: EnvironmentSpec) -> bool:
    """Does the spec name any dump (so `backup` takes them and `backups` lists them)?"""
    return spec.buckets is not None and any(group.dumps for group in spec.nodes)
