"""Every cloud API call goes through `Pacing.call`: one token from the provider's bucket per
request, bounded jittered retries, errors without secrets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from libcloud.compute.base import NodeDriver

from drbootstrap.providers.throttle import (
    ErrorKind,
    RetryEvent,
    RetryPolicy,
    TokenBucket,
    call_with_retries,
)


@dataclass
class Pacing:
    """The provider's bucket, the retry policy and the progress hook, shared by every call.

    `on_retry` is called from the run's worker threads: the renderer must be thread-safe.
    """

    bucket: TokenBucket | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    on_retry: Callable[[RetryEvent], None] | None = None

    def call(self, driver: NodeDriver, operation: str, fn: Callable[[], Any],
             before_retry: Callable[[ErrorKind], Any] | None = None, transient_codes: Iterable[str] = ()) -> Any:
        """`fn` must make exactly one request: each attempt takes exactly one token."""
        return call_with_retries(fn, policy=self.policy, bucket=self.bucket, on_retry=self.on_retry,
                                 operation=operation, secrets=driver_secrets(driver),
                                 before_retry=before_retry, transient_codes=transient_codes)


def driver_secrets(driver: NodeDriver) -> tuple[str, ...]:
    """Everything a driver was given that must never appear in a message."""
    values = (getattr(driver, "key", None), getattr(driver, "secret", None), getattr(driver, "token", None))
    return tuple(v for v in values if isinstance(v, str))
