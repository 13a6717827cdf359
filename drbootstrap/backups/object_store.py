"""The spec's bucket through libcloud's storage API: streamed uploads, small reads, listing by
prefix, deletion, and short-lived read URLs for the nodes (S3: presigned GET) so that no node ever
holds the bucket's credentials. Runs on the controller only."""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from drbootstrap.errors import DrbError, ProviderError
from drbootstrap.spec.buckets import LOCAL_STORAGE, S3_STORAGE

if TYPE_CHECKING:
    from libcloud.storage.base import Container, StorageDriver

    from drbootstrap.spec.operations import BucketSpec

MAX_SMALL_OBJECT = 1024 * 1024  # a record beside a dump; anything bigger is not ours


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int


class ObjectStore:
    """One container of one storage driver, as the spec's `buckets:` block names it. Errors of the
    store are ProviderErrors naming the container, never the credentials."""

    def __init__(self, spec: BucketSpec) -> None:
        self.spec = spec
        self._credentials = {name: ref.resolve() for name, ref in spec.credentials.items()}
        self.driver = self._make_driver()
        self.container = self._container()

    @property
    def location(self) -> str:
        """Where the catalog says the dumps are: bucket:<container>/<prefix>."""
        return f"bucket:{self.spec.container}/{self.spec.prefix}"

    @property
    def offers_signed_urls(self) -> bool:
        return self.spec.driver == S3_STORAGE

    def _make_driver(self) -> StorageDriver:
        from libcloud.storage.providers import get_driver

        try:
            if self.spec.driver == LOCAL_STORAGE:
                from libcloud.storage.drivers.local import LocalStorageDriver

                assert self.spec.path is not None  # validated with the spec
                from pathlib import Path

                Path(self.spec.path).mkdir(mode=0o700, parents=True, exist_ok=True)
                return LocalStorageDriver(self.spec.path)
            key, secret = self._credentials.get("key", ""), self._credentials.get("secret")
            options: dict[str, Any] = {}
            if self.spec.endpoint:
                url = urlsplit(self.spec.endpoint)
                options = {"host": url.hostname, "port": url.port or (443 if url.scheme == "https" else 80),
                           "secure": url.scheme == "https"}
            if self.spec.driver == S3_STORAGE:
                from libcloud.storage.drivers.s3 import S3StorageDriver

                return S3StorageDriver(key, secret, region=self.spec.region, **options)
            return get_driver(self.spec.driver)(key, secret, **options)
        except DrbError:
            raise
        except Exception as error:  # noqa: BLE001 - a driver's own errors, named without credentials
            raise ProviderError(f"storage driver {self.spec.driver}: {type(error).__name__}",
                                hint="check buckets.driver, endpoint and credentials") from None

    def _container(self) -> Container:
        from libcloud.storage.types import ContainerDoesNotExistError

        try:
            return self.driver.get_container(self.spec.container)
        except ContainerDoesNotExistError:
            return self._call("create the container", lambda: self.driver.create_container(self.spec.container))
        except Exception as error:  # noqa: BLE001
            raise self._error("open the container", error) from None

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except DrbError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever the driver raises, one line without secrets
            raise self._error(what, error) from None

    def _error(self, what: str, error: Exception) -> ProviderError:
        detail = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        for value in self._credentials.values():
            detail = detail.replace(value, "***") if value else detail
        return ProviderError(f"bucket {self.spec.container}: cannot {what}: {detail}",
                             hint="check the buckets: block (driver, endpoint, container, credentials)")

    # ---- objects ------------------------------------------------------------------------------

    def upload_stream(self, key: str, chunks: Iterator[bytes], meta: dict[str, str]) -> None:
        """Store `key` from CHUNKS as they come (never all in memory), with META where the driver keeps it."""
        extra = {"meta_data": meta, "content_type": "application/octet-stream"}
        self._call(f"write {key}", lambda: self.driver.upload_object_via_stream(chunks, self.container, key,
                                                                                  extra=extra))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(f"write {key}", lambda: self.driver.upload_object_via_stream(iter([data]), self.container, key))

    def read_bytes(self, key: str, limit: int = MAX_SMALL_OBJECT) -> bytes:
        """A small object whole; refuses one bigger than LIMIT."""
        obj = self._call(f"read {key}", lambda: self.driver.get_object(self.spec.container, key))
        if obj.size is not None and obj.size > limit:
            raise ProviderError(f"bucket {self.spec.container}: {key} is {obj.size} bytes, over {limit}")
        return b"".join(self.iter_chunks(key))

    def size(self, key: str) -> int:
        """The stored object's size in bytes (a sealed dump's is more than its content's)."""
        obj = self._call(f"read {key}", lambda: self.driver.get_object(self.spec.container, key))
        return int(obj.size or 0)

    def iter_chunks(self, key: str, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        obj = self._call(f"read {key}", lambda: self.driver.get_object(self.spec.container, key))
        stream = self._call(f"read {key}", lambda: self.driver.download_object_as_stream(obj, chunk_size=chunk_size))
        yield from stream

    def list(self, prefix: str) -> list[StoredObject]:
        import warnings

        with warnings.catch_warnings():  # drivers that cannot filter by prefix say so, then filter themselves
            warnings.simplefilter("ignore", UserWarning)
            objects = self._call(f"list {prefix}", lambda: list(self.driver.iterate_container_objects(
                self.container, prefix=prefix)))
        return [StoredObject(o.name, int(o.size or 0)) for o in objects if o.name.startswith(prefix)]

    def delete(self, key: str) -> None:
        from libcloud.storage.types import ObjectDoesNotExistError

        try:
            obj = self.driver.get_object(self.spec.container, key)
        except ObjectDoesNotExistError:
            return
        except Exception as error:  # noqa: BLE001
            raise self._error(f"delete {key}", error) from None
        self._call(f"delete {key}", lambda: self.driver.delete_object(obj))

    def signed_get_url(self, key: str, seconds: int) -> str | None:
        """A URL that reads `key` for SECONDS without credentials, where the driver offers one (S3)."""
        if not self.offers_signed_urls:
            return None
        if self.spec.endpoint:
            url = urlsplit(self.spec.endpoint)
            scheme, netloc = url.scheme, url.netloc
        else:
            scheme, netloc = "https", f"s3.{self.spec.region}.amazonaws.com"
        return presigned_s3_get(scheme, netloc, self.spec.region, self._credentials.get("key", ""),
                                self._credentials.get("secret", ""), f"/{self.spec.container}/{key}", seconds)


def presigned_s3_get(scheme: str, host: str, region: str, key_id: str, secret: str, path: str, seconds: int,
                     now: datetime.datetime | None = None) -> str:
    """An AWS Signature V4 query-string-signed GET (path-style). The host signed is the one the
    node sends, port included: libcloud's own presigner signs the host without its port."""
    now = now or datetime.datetime.now(datetime.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/{region}/s3/aws4_request"
    params = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": f"{key_id}/{scope}",
              "X-Amz-Date": stamp, "X-Amz-Expires": str(seconds), "X-Amz-SignedHeaders": "host"}
    query = urlencode(sorted(params.items()), quote_via=quote, safe="-_.~")
    canonical_path = quote(path, safe="/-_.~")
    canonical = "\n".join(["GET", canonical_path, query, f"host:{host}", "", "host", "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signing_key = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{scheme}://{host}{canonical_path}?{query}&X-Amz-Signature={signature}"
