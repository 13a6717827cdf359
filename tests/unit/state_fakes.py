"""An in-memory bucket standing in for drbootstrap.state.s3.S3Objects (conditional writes, ETags,
listing), so the unit tests can hold an environment whose `state:` is s3 without an S3 endpoint.

    bucket = use_memory_bucket(monkeypatch)   # every S3Objects made from now on shares `bucket`
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest

from drbootstrap.state.s3 import PreconditionFailed, StoredObject


@dataclass
class MemoryBucket:
    objects: dict[str, StoredObject] = field(default_factory=dict)  # full key -> object
    writes: int = 0


class MemoryObjects:
    """S3Objects' interface over a MemoryBucket: one prefix (`<prefix>/<environment>`)."""

    def __init__(self, bucket: MemoryBucket, settings, environment: str) -> None:
        self.bucket, self.retry_seconds = bucket, 1.0
        self.root = "/".join(p for p in (settings.prefix, environment) if p)
        self.where = f"s3://{settings.bucket}/{self.root}"

    def key(self, name: str) -> str:
        return f"{self.root}/{name}"

    def get(self, name: str, *, budget: float | None = None) -> StoredObject | None:
        return self.bucket.objects.get(self.key(name))

    def head(self, name: str, *, budget: float | None = None) -> StoredObject | None:
        found = self.bucket.objects.get(self.key(name))
        return None if found is None else StoredObject(b"", found.etag, dict(found.metadata))

    def put(self, name: str, body: bytes, *, if_match: str | None = None, if_none_match: bool = False,
            metadata: dict[str, str] | None = None, budget: float | None = None) -> str:
        current = self.bucket.objects.get(self.key(name))
        if (if_none_match and current is not None) or (if_match is not None and (current is None or
                                                                                  current.etag != if_match)):
            raise PreconditionFailed(name)
        self.bucket.writes += 1
        etag = f'"{hashlib.md5(body + str(self.bucket.writes).encode()).hexdigest()}"'
        self.bucket.objects[self.key(name)] = StoredObject(body, etag, dict(metadata or {}))
        return etag

    def names(self, under: str) -> list[str]:
        prefix = self.key(under)
        return [k[len(self.root) + 1:] for k in sorted(self.bucket.objects) if k.startswith(prefix)]


def use_memory_bucket(monkeypatch: pytest.MonkeyPatch) -> MemoryBucket:
    """Every RemoteState made from now on keeps its objects in one in-memory bucket."""
    from drbootstrap.state import remote

    bucket = MemoryBucket()
    monkeypatch.setattr(remote, "S3Objects", lambda settings, environment, **_: MemoryObjects(
        bucket, settings, environment))
    return bucket


S3_STATE = "state: {backend: s3, bucket: drb-state, encryption_key: '${env:DRB_TEST_STATE_KEY}'}\n"
STATE_KEY = "00" * 32
