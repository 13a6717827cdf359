"""The S3 side of remote state: objects read and written with conditional writes, through boto3.

boto3 (botocore) is used rather than libcloud's S3 storage driver because the lease and the fenced
journal need conditional writes (If-None-Match: * on create, If-Match on the ETag), which
libcloud's driver cannot send. Every call retries what a struggling endpoint answers (5xx,
throttling, resets, timeouts) for up to `retry_seconds`, then fails with one line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from drbootstrap.errors import StateWriteError
from drbootstrap.spec.operations import StateSpec

RETRYABLE_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout",
                             "Throttling", "ThrottlingException", "RequestTimeTooSkewed", "503", "500", "502", "504"})


class StateUnreachable(StateWriteError):
    """The state's S3 endpoint did not answer (or only with errors) for as long as allowed."""


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    etag: str
    metadata: dict[str, str]


class PreconditionFailed(Exception):
    """A conditional write lost: the object exists (If-None-Match) or changed (If-Match)."""


class S3Objects:
    """One bucket and prefix; keys given to its methods are relative to the prefix."""

    def __init__(self, settings: StateSpec, environment: str, *, retry_seconds: float | None = None) -> None:
        import boto3
        from botocore.config import Config

        assert settings.bucket is not None  # the spec requires it for s3
        self.bucket = settings.bucket
        self.root = "/".join(p for p in (settings.prefix, environment) if p)
        self.retry_seconds = float(retry_seconds if retry_seconds is not None else settings.retry_seconds)
        credentials = {name: ref.reveal() for name, ref in settings.credentials.items()}
        # Checksums only where the API requires them: older S3 implementations (Ceph, Walrus, MinIO
        # releases before 2025) refuse the CRC headers botocore otherwise adds to every PUT.
        config = Config(retries={"total_max_attempts": 1}, connect_timeout=3, read_timeout=10,
                        s3={"addressing_style": "path"}, user_agent_extra="drbootstrap",
                        request_checksum_calculation="when_required", response_checksum_validation="when_required")
        self.client: Any = boto3.session.Session().client(
            "s3", region_name=settings.region or "us-east-1", endpoint_url=settings.endpoint, config=config,
            aws_access_key_id=credentials.get("access_key_id"),
            aws_secret_access_key=credentials.get("secret_access_key"),
            aws_session_token=credentials.get("session_token"))
        self.where = f"s3://{self.bucket}/{self.root}" + (f" at {settings.endpoint}" if settings.endpoint else "")

    def key(self, name: str) -> str:
        return f"{self.root}/{name}"

    def get(self, name: str, *, budget: float | None = None) -> StoredObject | None:
        """The object, or None when there is none."""
        def call() -> StoredObject | None:
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
            except self._client_error() as error:
                if _code(error) in ("NoSuchKey", "404"):
                    return None
                raise
            return StoredObject(answer["Body"].read(), answer["ETag"], dict(answer.get("Metadata") or {}))
        return self._retrying(f"read {name}", call, budget)

    def head(self, name: str, *, budget: float | None = None) -> StoredObject | None:
        def call() -> StoredObject | None:
            try:
                answer = self.client.head_object(Bucket=self.bucket, Key=self.key(name))
            except self._client_error() as error:
                if _code(error) in ("NoSuchKey", "404", "NotFound"):
                    return None
                raise
            return StoredObject(b"", answer["ETag"], dict(answer.get("Metadata") or {}))
        return self._retrying(f"read {name}", call, budget)

    def put(self, name: str, body: bytes, *, if_match: str | None = None, if_none_match: bool = False,
            metadata: dict[str, str] | None = None, budget: float | None = None) -> str:
        """Write the object; its new ETag. PreconditionFailed when the condition does not hold."""
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(name), "Body": body,
                                     "Metadata": metadata or {}}
        if if_match is not None:
            arguments["IfMatch"] = if_match
        if if_none_match:
            arguments["IfNoneMatch"] = "*"

        def call() -> str:
            try:
                return str(self.client.put_object(**arguments)["ETag"])
            except self._client_error() as error:
                if _code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    raise PreconditionFailed(name) from None
                raise
        return self._retrying(f"write {name}", call, budget)

    def names(self, under: str) -> list[str]:
        """Every object name under `under` (relative to the prefix)."""
        def call() -> list[str]:
            found: list[str] = []
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=self.key(under))
            for page in pages:
                found += [item["Key"][len(self.root) + 1:] for item in page.get("Contents", [])]
            return found
        return self._retrying(f"list {under}", call, None)

    def _client_error(self) -> type[Exception]:
        return self.client.exceptions.ClientError

    def _retrying(self, what: str, call: Any, budget: float | None) -> Any:
        """call() until it answers or the budget is spent; only transient failures are retried."""
        from botocore.exceptions import BotoCoreError, ClientError

        deadline = time.monotonic() + (self.retry_seconds if budget is None else budget)
        pause, last = 0.1, ""
        while True:
            try:
                return call()
            except ClientError as error:
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if _code(error) not in RETRYABLE_CODES and not (isinstance(status, int) and status >= 500):
                    raise StateWriteError(f"state {self.where}: cannot {what}: {_code(error)}",
                                          hint=_ACCESS_HINT) from None
                last = f"{status} {_code(error)}"
            except BotoCoreError as error:  # connection refused or reset, timeout
                last = type(error).__name__
            if time.monotonic() + pause > deadline:
                raise StateUnreachable(
                    f"state {self.where}: cannot {what}: no good answer for "
                    f"{self.retry_seconds if budget is None else budget:.0f} s (last: {last})",
                    hint="the journal holds every step written before: run the command again once the "
                         "endpoint answers; it resumes from there") from None
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


_ACCESS_HINT = "check the bucket, the credentials and their rights (state: in the spec)"


def _code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
