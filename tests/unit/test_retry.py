"""The retry policy's rules, each proven as a decision with a fake clock (no real sleeping).

The loop that follows these decisions is :func:`shared.upstream.send` (tests/unit/test_upstream_loop.py).
"""

from __future__ import annotations

import email.utils

import pytest

from shared.deadline import Deadline
from shared.retry import Failure, RetryPolicy, parse_retry_after, status_is_retryable
from tests.fakes import FakeClock

LOST = Failure(True)  # no answer: connection refused or lost, or a timeout


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    assert status_is_retryable(status, {})
    assert Failure.of_status(status, {}).retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    assert not status_is_retryable(status, {})
    assert RetryPolicy().delay(1, Failure.of_status(status, {}), remaining=100) is None


def test_x_should_retry_overrides_status() -> None:
    assert status_is_retryable(400, {"x-should-retry": "true"})
    assert not status_is_retryable(503, {"x-should-retry": "false"})


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    date = email.utils.formatdate(2000.0 + 7, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=lambda: 2000.0) == pytest.approx(7.0)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_full_jitter_is_bounded_by_exponential_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    assert policy.backoff(0, rng=lambda: 0.999999) < 0.5
    assert policy.backoff(3, rng=lambda: 0.999999) == pytest.approx(4.0, rel=1e-5)
    assert policy.backoff(10, rng=lambda: 0.999999) == pytest.approx(8.0, rel=1e-5)
    assert policy.backoff(2, rng=lambda: 0.0) == 0.0


def waits(policy: RetryPolicy, failures: list[Failure], deadline: Deadline, clock: FakeClock,
          rng: float = 0.5) -> list[float]:
    """The waits the policy asks for, following its decisions on a fake clock, until it gives up."""
    for attempt, failure in enumerate(failures, start=1):
        wait = policy.delay(attempt, failure, remaining=deadline.remaining(), rng=lambda: rng)
        if wait is None:
            break
        clock.now += wait
        clock.sleeps.append(wait)
    return clock.sleeps


def test_connection_errors_back_off_with_full_jitter() -> None:
    clock = FakeClock()
    assert waits(RetryPolicy(max_attempts=4), [LOST, LOST], Deadline.after(100, clock), clock) == [0.25, 0.5]


def test_honours_retry_after_ms_from_a_429() -> None:
    clock = FakeClock()
    throttled = Failure(True, 429, {"retry-after-ms": "1234", "retry-after": "2"})
    assert waits(RetryPolicy(), [throttled], Deadline.after(100, clock), clock) == [1.234]


def test_does_not_retry_a_400() -> None:
    assert RetryPolicy().delay(1, Failure(False, 400), remaining=100) is None


def test_gives_up_after_max_attempts() -> None:
    clock = FakeClock()
    failures = [Failure(True, 500), Failure(True, 502), Failure(True, 503), Failure(True, 504)]
    assert len(waits(RetryPolicy(max_attempts=3), failures, Deadline.after(100, clock), clock)) == 2
    assert RetryPolicy(max_attempts=3).delay(3, Failure(True, 503), remaining=100) is None


def test_never_sleeps_past_the_deadline() -> None:
    clock = FakeClock()
    throttled = Failure(True, 429, {"retry-after-ms": "5000"})
    assert waits(RetryPolicy(), [throttled], Deadline.after(3, clock), clock) == []


def test_backoff_stops_when_the_deadline_is_near() -> None:
    clock = FakeClock()
    deadline = Deadline.after(2.5, clock)
    slept = waits(RetryPolicy(max_attempts=10, base_delay=1.0), [LOST] * 9, deadline, clock, rng=0.99)
    assert slept and sum(slept) < 2.5
    assert clock() <= 1000.0 + 2.5


def test_a_retry_after_beyond_the_cap_is_not_waited_for() -> None:
    too_long = Failure(True, 429, {"retry-after": "600"})
    assert RetryPolicy(max_retry_after=60).delay(1, too_long, remaining=10_000) is None


def test_failover_goes_at_once_whatever_the_upstream_asked() -> None:
    """Another backend can take the next attempt now: no backoff, no retry-after, no cap."""
    too_long = Failure(True, 429, {"retry-after": "600"})
    policy = RetryPolicy(max_retry_after=1)
    assert policy.delay(1, too_long, remaining=100, failover=True) == 0.0
    assert policy.delay(1, LOST, remaining=100, failover=True, rng=lambda: 0.9) == 0.0
    assert policy.delay(1, Failure(False, 400), remaining=100, failover=True) is None
    assert policy.delay(4, LOST, remaining=100, failover=True) is None  # attempts still count
    assert policy.delay(1, LOST, remaining=0.0, failover=True) is None  # and the deadline
