"""The master's own state in the spec's bucket, on the controller: its Puppet CA (and own
certificate), the code it serves, its broker's and dnsmasq's configuration.

`take_master_state` has the master's dumps agent make the archive (its built-in dump
`master-state`, drbootstrap.images.master_state) and streams it to the bucket like any dump, with
its digest, sealed with `buckets.encryption_key`; without that key it refuses (the CA key is
never at rest in clear). `choose_master_state` runs before anything is launched when the spec has
`master.restore`: the newest good archive (at or before `--as-of`) is fetched and opened here and
its digest checked, a refused one giving way to the next older one (the CA is the same in each);
none at all is a BackupError (exit 13). `offer_master_state` gives the master's launch a
short-lived URL and that archive's data key, which boot.sh uses before puppetserver starts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drbootstrap.backups.catalog import BackupRecord
from drbootstrap.backups.dumps import RECORD_SUFFIX, AgentCalls, DumpFailure, reason_of, records_in
from drbootstrap.errors import BackupError, DrbError
from drbootstrap.images.from_spec import MASTER_STATE_DUMP

if TYPE_CHECKING:
    from drbootstrap.backups.object_store import ObjectStore
    from drbootstrap.executor.context import RunContext
    from drbootstrap.images.userdata import MasterStateToRestore
    from drbootstrap.journal import Fact
    from drbootstrap.spec.models import EnvironmentSpec

MAX_ARCHIVE_BYTES = 64 * 1024 * 1024  # opened in memory on the controller to check its digest before launch


@dataclass(frozen=True)
class MasterStateTaken:
    """What `backup` did with the master's state: its record, or why not (one line)."""

    record: BackupRecord | None = None
    failure: DumpFailure | None = None
    refused: str = ""  # not attempted: the bucket would keep the CA key in clear


def take_master_state(spec: EnvironmentSpec, fleet: AgentCalls, *, rpc_timeout: float = 60.0) -> MasterStateTaken:
    """The master's state into the spec's bucket, when it has one (else nothing: no record)."""
    if spec.buckets is None:
        return MasterStateTaken()
    if spec.buckets.encryption_key is None:
        return MasterStateTaken(refused=f"{spec.master.hostname}: master state not backed up: the bucket would keep "
                                "its Puppet CA key unencrypted (add buckets.encryption_key)")
    from drbootstrap.backups.dumps import take_one, write_failed_record
    from drbootstrap.backups.object_store import ObjectStore
    from drbootstrap.plan import build_plan
    from drbootstrap.spec.models import DumpSpec

    master = build_plan(spec).master
    dump = DumpSpec(name=MASTER_STATE_DUMP, command="drbootstrap.images.master_state archive",
                    restore="images/master/boot.sh (master.restore)")
    store = ObjectStore(spec.buckets)
    try:
        return MasterStateTaken(take_one(spec.environment, fleet, store, master, dump, rpc_timeout, kind="master"))
    except DrbError as error:
        failure = DumpFailure(master.hostname, MASTER_STATE_DUMP,
                              reason_of(error).removeprefix(f"dump {MASTER_STATE_DUMP}: "))
        write_failed_record(spec.environment, store, master, dump, failure.reason, kind="master")
        return MasterStateTaken(failure=failure)


@dataclass(frozen=True)
class MasterStateChoice:
    """The master-state archive a rebuilt master takes back, checked here before launch."""

    record: BackupRecord
    parts: tuple[str, ...]
    data_key: str = field(repr=False)  # base64; "" when not sealed
    refused: list[str] = field(default_factory=list)  # "<key>: <why>" of newer archives refused

    def facts(self, now: float) -> dict[str, Fact]:
        """The report's entry (the age of the state restored), as a restored volume's."""
        from drbootstrap.backups.restored import VolumeRestoreFacts

        return VolumeRestoreFacts(MASTER_STATE_DUMP, self.record.id, int(self.record.created_at), int(now), "ok",
                                  ",".join(line.split(": ", 1)[0] for line in self.refused)).facts()

    def detail(self, now: float) -> str:
        from drbootstrap.backups.choose import format_age

        refused = "".join(f"; refused {line}" for line in self.refused)
        return (f"master state ({', '.join(self.parts)}) {self.record.id.rsplit('/', 1)[-1]} from "
                f"{format_age(now - self.record.created_at)} ago restored before puppetserver started, sha256 "
                f"{(self.record.manifest_digest or '')[:12]} matched{refused}")


def choose_master_state(spec: EnvironmentSpec, *, source: str | None = None,
                        as_of: float | None = None) -> MasterStateChoice | None:
    """Before launch, when the spec has `master.restore`: the newest good archive of SOURCE (at or
    before AS_OF) that opens and matches its digest. Raises BackupError when none does."""
    parts = tuple(spec.master.restore.parts)
    if not parts:
        return None
    assert spec.buckets is not None  # validated with the spec (spec.buckets)
    from drbootstrap.backups.object_store import ObjectStore

    store = ObjectStore(spec.buckets)
    source = source or spec.environment
    ever = [r for r in records_in(store, source) if r.kind == "master" and r.hostname == spec.master.hostname]
    candidates = [r for r in reversed(ever) if r.good and (as_of is None or r.created_at <= as_of)]
    asked = f"master.restore ({', '.join(parts)})"
    if not candidates:
        when = f" at or before {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(as_of))} UTC" if as_of else ""
        raise BackupError(f"{asked}: environment {source} has no good backup of its master's state in "
                          f"{store.location}{when}: nothing launched",
                          hint="run `drbootstrap backup` while the master runs, or remove master.restore")
    refused: list[str] = []
    for record in candidates:
        try:
            key = _check(store, record)
        except DrbError as error:
            refused.append(f"{record.id}: {error.message}")
            continue
        return MasterStateChoice(record, parts, key, refused)
    raise BackupError(f"{asked}: every backup of the master's state was refused: " + "; ".join(refused) +
                      ": nothing launched", hint="the bucket's objects are damaged: restore from another backup")


def _check(store: ObjectStore, record: BackupRecord) -> str:
    """Open RECORD's archive and check its digest and size; its data key (base64, "" if not sealed)."""
    sealed = json.loads(store.read_bytes(record.id + RECORD_SUFFIX)).get("sealed")
    data_key = b""
    if sealed:
        from drbootstrap.backups.sealing import parse_key, unwrap_data_key

        if store.spec.encryption_key is None:
            raise DrbError("it is encrypted and the spec names no buckets.encryption_key")
        data_key = unwrap_data_key(parse_key(store.spec.encryption_key.resolve()), sealed)
    digest, size = _digest(store, record.id, data_key)
    if digest != record.manifest_digest or size != record.size_bytes:
        raise DrbError(f"its digest does not match (sha256 {digest[:16]}..., {size} bytes; expected "
                       f"{(record.manifest_digest or '')[:16]}..., {record.size_bytes} bytes)")
    return base64.b64encode(data_key).decode() if data_key else ""


def _digest(store: ObjectStore, key: str, data_key: bytes) -> tuple[str, int]:
    from drbootstrap.backups.sealing import Opener

    opener = Opener(data_key) if data_key else None
    digest, size = hashlib.sha256(), 0
    for chunk in store.iter_chunks(key):
        plain = opener.feed(chunk) if opener else chunk
        digest.update(plain)
        size += len(plain)
        if size > MAX_ARCHIVE_BYTES:
            raise DrbError(f"it is over {MAX_ARCHIVE_BYTES // 2**20} MiB, more than a master's state")
    if opener:
        opener.finish()
    return digest.hexdigest(), size


def offer_master_state(ctx: RunContext, choice: MasterStateChoice) -> MasterStateToRestore:
    """What the master's user-data says to fetch: a URL signed by the store, else served once by
    this controller while the master boots, for `buckets.signed_url_seconds` (at least 10 min)."""
    from drbootstrap.backups.object_store import ObjectStore
    from drbootstrap.images.userdata import MasterStateToRestore

    assert ctx.spec.buckets is not None
    store = ObjectStore(ctx.spec.buckets)
    seconds = max(600, store.spec.signed_url_seconds)
    url = store.signed_get_url(choice.record.id, seconds)
    if url is None:
        address = ctx.provider.controller_address_for_nodes()
        if address is None:
            raise BackupError(f"bucket driver {store.spec.driver} signs no URLs and the master cannot reach this "
                              "controller to fetch its state", hint="keep the backups in an S3 bucket (driver: s3)")
        from drbootstrap.backups.object_server import start_serving_once

        url, _ = start_serving_once(store, choice.record.id, address, seconds)
    assert choice.record.manifest_digest is not None and choice.record.size_bytes is not None
    return MasterStateToRestore(url=url, key=choice.data_key, sha256=choice.record.manifest_digest,
                                size=choice.record.size_bytes, parts=choice.parts)
