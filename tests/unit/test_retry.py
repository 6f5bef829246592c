"""The retry policy's rules, each proven with a fake clock (no real sleeping)."""

from __future__ import annotations

import email.utils

import pytest

from shared.deadline import Deadline
from shared.retry import Failure, RetryPolicy, parse_retry_after, status_is_retryable
from tests.fakes import FakeClock


class Boom(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__("boom")
        self.failure = failure


def classify(exc: BaseException) -> Failure | None:
    return exc.failure if isinstance(exc, Boom) else None


def script(*outcomes: Failure | str):
    calls: list[float] = []

    async def attempt() -> str:
        calls.append(len(calls))
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Failure):
            raise Boom(outcome)
        return outcome

    return attempt, calls


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    assert status_is_retryable(status, {})


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    assert not status_is_retryable(status, {})


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


async def test_retries_connection_errors_then_succeeds() -> None:
    clock = FakeClock()
    attempt, calls = script(Failure(True), Failure(True), "ok")
    result = await RetryPolicy(max_attempts=4).run(
        attempt, classify=classify, deadline=Deadline.after(100, clock), sleep=clock.sleep, rng=lambda: 0.5)
    assert result == "ok"
    assert len(calls) == 3
    assert clock.sleeps == [0.25, 0.5]  # full jitter at rng=0.5 of 0.5 s then 1 s ceilings


async def test_honours_retry_after_ms_from_a_429() -> None:
    clock = FakeClock()
    throttled = Failure(True, 429, {"retry-after-ms": "1234", "retry-after": "2"})
    attempt, _calls = script(throttled, "ok")
    await RetryPolicy().run(attempt, classify=classify, deadline=Deadline.after(100, clock), sleep=clock.sleep)
    assert clock.sleeps == [1.234]


async def test_does_not_retry_a_400() -> None:
    clock = FakeClock()
    attempt, calls = script(Failure(False, 400), "ok")
    with pytest.raises(Boom):
        await RetryPolicy().run(attempt, classify=classify, deadline=Deadline.after(100, clock), sleep=clock.sleep)
    assert len(calls) == 1 and clock.sleeps == []


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    clock = FakeClock()
    attempt, calls = script(Failure(True, 500), Failure(True, 502), Failure(True, 503), "never")
    with pytest.raises(Boom) as info:
        await RetryPolicy(max_attempts=3).run(
            attempt, classify=classify, deadline=Deadline.after(100, clock), sleep=clock.sleep)
    assert info.value.failure.status == 503
    assert len(calls) == 3


async def test_never_sleeps_past_the_deadline() -> None:
    clock = FakeClock()
    throttled = Failure(True, 429, {"retry-after-ms": "5000"})
    attempt, calls = script(throttled, "ok")
    with pytest.raises(Boom):
        await RetryPolicy().run(attempt, classify=classify, deadline=Deadline.after(3, clock), sleep=clock.sleep)
    assert clock.sleeps == [] and len(calls) == 1


async def test_backoff_stops_when_the_deadline_is_near() -> None:
    clock = FakeClock()
    attempt, _calls = script(Failure(True), Failure(True), Failure(True), "ok")
    with pytest.raises(Boom):
        await RetryPolicy(max_attempts=10, base_delay=1.0).run(
            attempt, classify=classify, deadline=Deadline.after(2.5, clock), sleep=clock.sleep, rng=lambda: 0.99)
    assert sum(clock.sleeps) < 2.5
    assert clock() <= 1000.0 + 2.5


async def test_a_retry_after_beyond_the_cap_is_not_waited_for() -> None:
    clock = FakeClock()
    attempt, _calls = script(Failure(True, 429, {"retry-after": "600"}), "ok")
    with pytest.raises(Boom):
        await RetryPolicy(max_retry_after=60).run(
            attempt, classify=classify, deadline=Deadline.after(10_000, clock), sleep=clock.sleep)
    assert clock.sleeps == []


async def test_unclassified_errors_propagate_at_once() -> None:
    clock = FakeClock()

    async def attempt() -> str:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await RetryPolicy().run(attempt, classify=classify, deadline=Deadline.after(100, clock), sleep=clock.sleep)
    assert clock.sleeps == []


async def test_a_stream_that_fails_after_it_began_is_not_retried() -> None:
    """The policy wraps only the call that returns the response; reading the body happens after
    ``run`` has returned, so a failure there cannot trigger another attempt."""
    clock = FakeClock()
    attempts = 0

    async def attempt():
        nonlocal attempts
        attempts += 1

        async def body():
            yield b"data: 1\n\n"
            raise Boom(Failure(True, 500))

        return body()

    stream = await RetryPolicy().run(attempt, classify=classify, deadline=Deadline.after(100, clock),
                                     sleep=clock.sleep)
    received = []
    with pytest.raises(Boom):
        async for chunk in stream:
            received.append(chunk)
    assert received == [b"data: 1\n\n"] and attempts == 1
