"""Client-side pacing and retries for cloud API calls: a token bucket per provider, jittered
exponential backoff for throttling and transient errors, and secret-free error messages.
"""

from __future__ import annotations

import enum
import http.client
import random
import re
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from drbootstrap.clock import SYSTEM_CLOCK, Clock
from drbootstrap.errors import DrbError, ProviderError

T = TypeVar("T")


# The bucket and the retry loop read monotonic time and sleep; tests inject a fake Clock.


class TokenBucket:
    """A thread-safe token bucket: at most `burst + per_second * T` grants in any window of T seconds.

    A caller that finds the bucket empty reserves the next token (the level goes negative) and
    sleeps until it is due, outside the lock; so waiting callers are served in arrival order and
    the bound holds however many threads share the bucket.
    """

    def __init__(self, per_second: float, burst: float, *, clock: Clock | None = None) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError(f"token bucket needs per_second > 0 and burst >= 1, got {per_second}, {burst}")
        self.per_second = float(per_second)
        self.burst = float(burst)
        self._clock = clock or SYSTEM_CLOCK
        self._lock = threading.Lock()
        self._level = float(burst)
        self._updated = self._clock.monotonic()
        self.granted = 0

    def _refill(self, now: float) -> None:
        self._level = min(self.burst, self._level + (now - self._updated) * self.per_second)
        self._updated = now

    def reserve(self, tokens: float = 1.0) -> float:
        """Take `tokens` now and return how many seconds the caller must wait before using them."""
        with self._lock:
            now = self._clock.monotonic()
            self._refill(now)
            self._level -= tokens
            self.granted += 1
            return 0.0 if self._level >= 0 else -self._level / self.per_second

    def acquire(self, tokens: float = 1.0) -> float:
        """Block until `tokens` are available; return the seconds waited."""
        wait = self.reserve(tokens)
        self._clock.sleep(wait)
        return wait

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take `tokens` only if they are available right now."""
        with self._lock:
            self._refill(self._clock.monotonic())
            if self._level < tokens:
                return False
            self._level -= tokens
            self.granted += 1
            return True

    def allowance(self, window_seconds: float) -> float:
        """The most requests this bucket lets through in any window of `window_seconds`."""
        return self.burst + self.per_second * window_seconds


class ErrorKind(enum.Enum):
    THROTTLED = "throttled"  # refused before doing anything: safe to repeat as is
    TRANSIENT = "transient"  # may or may not have happened: look before repeating a create
    PERMANENT = "permanent"  # repeating will not help


_THROTTLE_CODES = ("RequestLimitExceeded", "Throttling", "ThrottlingException", "TooManyRequests",
                   "SlowDown", "RequestThrottled", "EC2ThrottledException")
_TRANSIENT_CODES = ("Unavailable", "InternalError", "ServiceUnavailable", "InsufficientInstanceCapacity")
_TRANSIENT_HTTP = {500, 502, 504}


def classify_error(error: BaseException, transient_codes: Iterable[str] = ()) -> ErrorKind:
    """Decide whether a failed API call is worth repeating, and how carefully.

    `transient_codes`: error codes that mean "not yet" for this particular call (for example
    DependencyViolation while deleting a group whose instances are still terminating).
    """
    from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
    from libcloud.common.types import InvalidCredsError, MalformedResponseError

    if isinstance(error, (InvalidCredsError, DrbError)):
        return ErrorKind.PERMANENT
    if isinstance(error, RateLimitReachedError):
        return ErrorKind.THROTTLED
    text = str(error)
    if any(code in text for code in transient_codes):
        return ErrorKind.TRANSIENT
    if any(code in text for code in _THROTTLE_CODES):
        return ErrorKind.THROTTLED
    if isinstance(error, BaseHTTPError):
        code = _as_int(error.code)
        if code in (429, 503):
            return ErrorKind.THROTTLED
        if code in _TRANSIENT_HTTP:
            return ErrorKind.TRANSIENT
    if any(code in text for code in _TRANSIENT_CODES):
        return ErrorKind.TRANSIENT
    if isinstance(error, MalformedResponseError):
        return ErrorKind.TRANSIENT  # a proxy's HTML error page in place of the API's answer
    if isinstance(error, (ConnectionError, socket.timeout, TimeoutError, http.client.HTTPException)):
        return ErrorKind.TRANSIENT
    if _is_requests_network_error(error):
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def _is_requests_network_error(error: BaseException) -> bool:
    try:
        import requests
    except ImportError:  # pragma: no cover - libcloud depends on requests
        return False
    return isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                              requests.exceptions.ChunkedEncodingError))


def _as_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]  # any value: what int() refuses is None
    except (TypeError, ValueError):
        return None


# Credentials that can hide in a libcloud message: request URLs carry signed query strings.
_SECRET_PATTERNS = (
    re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,20}\b"),
    # UserData too: user-data scripts carry PSKs and autosign tokens, and GET URLs carry user-data.
    re.compile(r"(?i)((?:X-Amz-)?Signature|X-Amz-Credential|X-Amz-Security-Token|AWSAccessKeyId"
               r"|Credential|SecurityToken|UserData|password|secret|token)=[^&\s,\"']+"),
)


def scrub_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Replace every known secret value and every credential-looking fragment with ***."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _SECRET_PATTERNS[0].sub("***", text)
    return _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}=***", text)


def describe_error(error: BaseException, secrets: Iterable[str | None] = (), limit: int = 300) -> str:
    """One secret-free line naming what went wrong in a cloud API call."""
    from libcloud.common.exceptions import BaseHTTPError

    if isinstance(error, BaseHTTPError):
        text = f"HTTP {error.code}: {error.message}"
    else:
        text = f"{type(error).__name__}: {error}"
    text = " ".join(scrub_secrets(text, secrets).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts and elapsed time are both bounded; delays grow with full jitter."""

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_elapsed: float = 120.0

    def delay_before(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before attempt number `attempt` (2, 3, ...): uniform in [0, cap]."""
        cap = min(self.max_delay, self.base_delay * (2 ** (attempt - 2)))
        return rng.uniform(0, cap)


@dataclass(frozen=True)
class RetryEvent:
    """One repeated call, for the progress display: what failed, why, and how long we back off."""

    operation: str
    attempt: int  # the attempt that failed, 1-based
    max_attempts: int
    delay: float
    kind: ErrorKind
    reason: str  # already free of secrets


class RetriesExhaustedError(ProviderError):
    """A cloud call kept failing with throttling or transient errors past the retry bounds."""


def call_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    bucket: TokenBucket | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
    operation: str = "cloud call",
    secrets: Iterable[str | None] = (),
    before_retry: Callable[[ErrorKind], T | None] | None = None,
    transient_codes: Iterable[str] = (),
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> T:
    """Call `fn` once per bucket token until it succeeds, a permanent error, or the bounds run out.

    `before_retry(kind)` runs before each repeat (outside the bucket; it should pace itself); if it
    returns a value, that value is the result: this is how a create whose answer was lost is
    found instead of being made twice. Errors leave here as ProviderError without secrets; a
    DrbError raised by `fn` (a driver of our own) is already clean and leaves unchanged.
    """
    clock = clock or SYSTEM_CLOCK
    rng = rng or random.Random()
    secrets, transient_codes = tuple(secrets), tuple(transient_codes)
    first_failure: float | None = None
    attempt = 0
    while True:
        attempt += 1
        if bucket is not None:
            bucket.acquire()
        try:
            return fn()
        except DrbError:
            raise
        except Exception as error:  # noqa: BLE001 - classified below, re-raised clean
            kind = classify_error(error, transient_codes)
            reason = describe_error(error, secrets)
            if kind is ErrorKind.PERMANENT:
                raise ProviderError(f"{operation} failed: {reason}") from None
            now = clock.monotonic()
            first_failure = now if first_failure is None else first_failure
            delay = _retry_after(error, policy.delay_before(attempt + 1, rng), policy)
            if attempt >= policy.max_attempts or now - first_failure + delay > policy.max_elapsed:
                raise RetriesExhaustedError(
                    f"{operation} failed after {attempt} attempts ({kind.value}): {reason}",
                    hint=("lower the provider's rate or max_parallel in the spec, or retry later"
                          if kind is ErrorKind.THROTTLED else "the cloud kept failing: check its status, retry later"),
                ) from None
        if on_retry is not None:
            on_retry(RetryEvent(operation, attempt, policy.max_attempts, delay, kind, reason))
        clock.sleep(delay)
        if before_retry is not None:
            found = before_retry(kind)
            if found is not None:
                return found


def _retry_after(error: BaseException, jittered: float, policy: RetryPolicy) -> float:
    """Honour a server's Retry-After when it asks for longer than our own backoff."""
    headers = getattr(error, "headers", None) or {}
    try:
        asked = float(headers.get("retry-after", 0) if hasattr(headers, "get") else 0)
    except (TypeError, ValueError):
        asked = 0.0
    return min(policy.max_delay, max(jittered, asked))
