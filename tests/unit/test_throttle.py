"""Token bucket, retry loop and error classification, on a fake clock (nothing sleeps here)."""

from __future__ import annotations

import random
import threading

import pytest
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, MalformedResponseError

from drbootstrap.errors import ProviderError
from drbootstrap.providers.throttle import (
    ErrorKind,
    RetriesExhaustedError,
    RetryPolicy,
    TokenBucket,
    call_with_retries,
    classify_error,
    describe_error,
    scrub_secrets,
)


class FakeClock:
    """Time advances only when someone sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(0.0, seconds)


def test_bucket_grants_the_burst_at_once_then_one_token_per_refill_interval():
    clock = FakeClock()
    bucket = TokenBucket(per_second=2, burst=3, clock=clock)
    waits = [bucket.acquire() for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == pytest.approx(0.5)
    assert waits[4] == pytest.approx(0.5)
    assert clock.now == pytest.approx(1001.0)


def test_bucket_refills_with_time_but_never_above_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(per_second=10, burst=2, clock=clock)
    assert bucket.try_acquire() and bucket.try_acquire()
    assert not bucket.try_acquire()
    clock.now += 100
    assert bucket.try_acquire() and bucket.try_acquire()
    assert not bucket.try_acquire()


def test_reservations_from_many_threads_never_exceed_the_allowance_in_any_window():
    clock = FakeClock()
    bucket = TokenBucket(per_second=5, burst=4, clock=clock)
    due: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(25):
            wait = bucket.reserve()
            with lock:
                due.append(clock.monotonic() + wait)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    due.sort()
    assert len(due) == 100
    for start_index, start in enumerate(due):
        for window in (0.0, 0.5, 1.0, 3.0):
            inside = sum(1 for t in due[start_index:] if t <= start + window + 1e-9)
            assert inside <= bucket.allowance(window) + 1e-9


def test_bucket_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        TokenBucket(per_second=0, burst=5)
    with pytest.raises(ValueError):
        TokenBucket(per_second=1, burst=0)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (BaseHTTPError(503, "RequestLimitExceeded: Request limit exceeded."), ErrorKind.THROTTLED),
        (BaseHTTPError(503, "Unavailable: try later"), ErrorKind.THROTTLED),
        (RateLimitReachedError(headers={"retry-after": "2"}), ErrorKind.THROTTLED),
        (BaseHTTPError(400, "Throttling: Rate exceeded"), ErrorKind.THROTTLED),
        (BaseHTTPError(500, "InternalError: oops"), ErrorKind.TRANSIENT),
        (BaseHTTPError(502, "bad gateway"), ErrorKind.TRANSIENT),
        (ConnectionResetError(104, "Connection reset by peer"), ErrorKind.TRANSIENT),
        (TimeoutError("timed out"), ErrorKind.TRANSIENT),
        (MalformedResponseError("Failed to parse XML", body="<html>"), ErrorKind.TRANSIENT),
        (InvalidCredsError("AuthFailure: bad key"), ErrorKind.PERMANENT),
        (BaseHTTPError(400, "InvalidAMIID.NotFound: no such image"), ErrorKind.PERMANENT),
        (ValueError("bad argument"), ErrorKind.PERMANENT),
    ],
)
def test_errors_are_classified_by_whether_repeating_can_help(error, kind):
    assert classify_error(error) is kind


def test_requests_connection_errors_are_transient():
    import requests

    assert classify_error(requests.exceptions.ConnectionError("reset")) is ErrorKind.TRANSIENT


def _failing(errors: list[BaseException], result="ok"):
    calls = {"n": 0}

    def fn():
        calls["n"] += 1
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


def test_throttled_calls_are_repeated_with_growing_jittered_delays_and_reported():
    clock = FakeClock()
    events = []
    fn, calls = _failing([BaseHTTPError(503, "RequestLimitExceeded: slow down")] * 3)
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=30.0, max_elapsed=100.0)
    result = call_with_retries(fn, policy=policy, on_retry=events.append, operation="RunInstances web01",
                               clock=clock, rng=random.Random(7))
    assert result == "ok" and calls["n"] == 4
    assert [e.attempt for e in events] == [1, 2, 3]
    assert all(e.kind is ErrorKind.THROTTLED and "RequestLimitExceeded" in e.reason for e in events)
    caps = [1.0, 2.0, 4.0]
    assert all(0 <= e.delay <= cap for e, cap in zip(events, caps, strict=False))
    assert clock.sleeps == [e.delay for e in events]


def test_every_attempt_takes_a_token_from_the_bucket():
    clock = FakeClock()
    bucket = TokenBucket(per_second=1, burst=1, clock=clock)
    fn, calls = _failing([ConnectionResetError("reset")] * 2)
    call_with_retries(fn, policy=RetryPolicy(base_delay=0.0), bucket=bucket, clock=clock)
    assert calls["n"] == 3 and bucket.granted == 3
    assert clock.now >= 1002.0  # two refills of one second each


def test_attempts_are_bounded_in_count():
    clock = FakeClock()
    fn, calls = _failing([BaseHTTPError(503, "RequestLimitExceeded")] * 10)
    with pytest.raises(RetriesExhaustedError, match="after 3 attempts"):
        call_with_retries(fn, policy=RetryPolicy(max_attempts=3, base_delay=0.1), clock=clock)
    assert calls["n"] == 3


def test_attempts_are_bounded_in_time():
    clock = FakeClock()
    fn, calls = _failing([BaseHTTPError(503, "RequestLimitExceeded")] * 100)
    policy = RetryPolicy(max_attempts=100, base_delay=10.0, max_delay=10.0, max_elapsed=25.0)
    with pytest.raises(RetriesExhaustedError):
        call_with_retries(fn, policy=policy, clock=clock, rng=random.Random(1))
    assert sum(clock.sleeps) <= 25.0


def test_retry_after_from_the_server_is_honoured_up_to_the_cap():
    clock = FakeClock()
    fn, _ = _failing([RateLimitReachedError(headers={"retry-after": "7"})])
    call_with_retries(fn, policy=RetryPolicy(base_delay=0.01, max_delay=20.0), clock=clock)
    assert clock.sleeps == [7.0]


def test_permanent_errors_are_not_repeated():
    fn, calls = _failing([BaseHTTPError(400, "InvalidAMIID.NotFound: ami-1")])
    with pytest.raises(ProviderError, match="InvalidAMIID"):
        call_with_retries(fn, policy=RetryPolicy(), clock=FakeClock())
    assert calls["n"] == 1


def test_a_lost_create_is_found_before_retrying_instead_of_repeated():
    fn, calls = _failing([ConnectionResetError("reset after send")] * 3)
    kinds = []

    def look(kind):
        kinds.append(kind)
        return "found-node"

    assert call_with_retries(fn, policy=RetryPolicy(), before_retry=look, clock=FakeClock()) == "found-node"
    assert calls["n"] == 1 and kinds == [ErrorKind.TRANSIENT]


SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"


def test_secrets_never_surface_in_retry_events_or_the_final_error():
    leaky = BaseHTTPError(
        503,
        f"RequestLimitExceeded at https://ec2/?AWSAccessKeyId={ACCESS_KEY}&Signature=abc%2Bdef "
        f"Credential={ACCESS_KEY}/20260101/us-east-1/ec2/aws4_request secret {SECRET_KEY}",
    )
    events = []
    fn, _ = _failing([leaky] * 5)
    with pytest.raises(ProviderError) as caught:
        call_with_retries(fn, policy=RetryPolicy(max_attempts=2, base_delay=0), on_retry=events.append,
                          secrets=[ACCESS_KEY, SECRET_KEY], clock=FakeClock())
    rendered = [str(caught.value), repr(caught.value)] + [repr(e) for e in events]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    for text in rendered:
        assert ACCESS_KEY not in text and SECRET_KEY not in text and "abc%2Bdef" not in text
    assert "RequestLimitExceeded" in str(caught.value)


def test_credential_patterns_are_scrubbed_even_when_the_secret_is_not_known():
    text = scrub_secrets("key AKIAABCDEFGHIJKLMNOP url ?X-Amz-Signature=deadbeef&password=hunter2")
    assert "AKIAABCDEFGHIJKLMNOP" not in text and "deadbeef" not in text and "hunter2" not in text


def test_error_descriptions_are_one_bounded_line():
    text = describe_error(BaseHTTPError(500, "line one\nline two " + "x" * 1000))
    assert "\n" not in text and len(text) <= 300 and text.startswith("HTTP 500")


def test_errors_of_our_own_drivers_leave_unchanged_and_are_not_repeated():
    from drbootstrap.errors import NotFoundError

    fn, calls = _failing([NotFoundError("local cloud: no image 'x'", hint="add it")])
    with pytest.raises(NotFoundError, match="no image"):
        call_with_retries(fn, policy=RetryPolicy(), clock=FakeClock())
    assert calls["n"] == 1


def test_a_call_can_name_codes_that_mean_not_yet_for_it():
    not_yet = BaseHTTPError(400, "DependencyViolation: resource sg-1 has a dependent object")
    assert classify_error(not_yet) is ErrorKind.PERMANENT
    assert classify_error(not_yet, ["DependencyViolation"]) is ErrorKind.TRANSIENT
    fn, calls = _failing([not_yet] * 2)
    call_with_retries(fn, policy=RetryPolicy(base_delay=0), transient_codes=["DependencyViolation"], clock=FakeClock())
    assert calls["n"] == 3


def test_user_data_in_a_failed_request_url_is_scrubbed():
    message = ("HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: "
               "/?Action=RunInstances&UserData=IyEvYmluL3NoCmV4cG9ydCBQU0s9aHVudGVyMg%3D%3D&ClientToken=drb-1")
    text = describe_error(ConnectionError(message))
    assert "IyEvYmluL3NoCmV4cG9ydCBQU0s9aHVudGVyMg" not in text and "RunInstances" in text
