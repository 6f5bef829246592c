"""The pacer, driven by a fake clock: it reads the upstream's signals and never stampedes."""

from __future__ import annotations

import pytest

from shared.jobs.pacer import Pacer, Throttled
from tests.fakes import FakeClock


def make() -> tuple[Pacer, FakeClock]:
    clock = FakeClock(100.0)
    return Pacer(clock=clock, sleep=clock.sleep), clock


async def test_no_signal_no_wait() -> None:
    pacer, clock = make()
    permit = await pacer.acquire(1000, max_wait=1)
    pacer.release(permit, {})
    assert clock.sleeps == []


async def test_a_429_blocks_every_worker_for_the_time_it_asks() -> None:
    pacer, clock = make()
    assert pacer.throttled({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5
    await pacer.acquire(10, max_wait=2)
    assert clock.sleeps == [1.5]
    pacer2, _ = make()
    pacer2.throttled({"retry-after": "30"})
    with pytest.raises(Throttled) as info:
        await pacer2.acquire(10, max_wait=2)
    assert info.value.wait == pytest.approx(30)


async def test_waits_for_the_window_to_refill_when_tokens_run_short() -> None:
    pacer, clock = make()
    permit = await pacer.acquire(500, max_wait=5)
    # 60k TPM: 1000 tokens per second come back; 200 remain and the next request needs 700.
    pacer.release(permit, {"x-ratelimit-remaining-tokens": "200", "x-ratelimit-limit-tokens": "60000"})
    await pacer.acquire(700, max_wait=5)
    assert clock.sleeps == [pytest.approx(0.5)]


async def test_hands_back_when_the_refill_takes_too_long() -> None:
    pacer, _ = make()
    pacer.observe({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-limit-tokens": "6000"})
    with pytest.raises(Throttled) as info:
        await pacer.acquire(3000, max_wait=2)
    assert info.value.wait == pytest.approx(30)


async def test_in_flight_requests_count_against_what_remains() -> None:
    pacer, clock = make()
    pacer.observe({"x-ratelimit-remaining-tokens": "1000", "x-ratelimit-limit-tokens": "60000"})
    first = await pacer.acquire(800, max_wait=5)
    await pacer.acquire(800, max_wait=5)  # only 200 left while the first is in flight
    assert clock.sleeps == [pytest.approx(0.6)]
    pacer.release(first, None)


async def test_remaining_requests_are_respected() -> None:
    pacer, clock = make()
    pacer.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-limit-requests": "60"})
    await pacer.acquire(1, max_wait=5)
    assert clock.sleeps == [pytest.approx(1.0)]


async def test_without_a_known_limit_an_old_observation_is_dropped() -> None:
    pacer, clock = make()
    pacer.observe({"x-ratelimit-remaining-tokens": "0"})
    clock.now += 10
    await pacer.acquire(5000, max_wait=0.1)
    assert clock.sleeps == []


def test_the_largest_request_is_the_known_limit() -> None:
    pacer, _ = make()
    assert pacer.max_request_tokens() is None
    pacer.observe({"x-ratelimit-limit-tokens": "1000"})
    assert pacer.max_request_tokens() == 1000
