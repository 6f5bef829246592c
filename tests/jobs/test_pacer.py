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


async def test_a_lifted_limit_is_used_from_the_next_response_on() -> None:
    # Issue #14 finding 2: after a 12k TPM deployment was lifted, the pacer kept splitting requests
    # to the old limit for ever.
    pacer, clock = make()
    pacer.observe({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-limit-tokens": "12000"})
    assert pacer.max_request_tokens() == 12000
    pacer.observe({"x-ratelimit-remaining-tokens": "1000000"})  # no limit stated any more
    assert pacer.max_request_tokens() is None
    await pacer.acquire(200_000, max_wait=0.1)
    assert clock.sleeps == []


async def test_a_raised_limit_replaces_the_learned_one() -> None:
    pacer, clock = make()
    pacer.observe({"x-ratelimit-remaining-tokens": "100", "x-ratelimit-limit-tokens": "12000"})
    pacer.observe({"x-ratelimit-remaining-tokens": "250000", "x-ratelimit-limit-tokens": "300000"})
    assert pacer.max_request_tokens() == 300000
    await pacer.acquire(200_000, max_wait=0.1)
    assert clock.sleeps == []


def test_the_largest_remaining_stands_for_the_limit_for_one_window_only() -> None:
    pacer, clock = make()
    pacer.observe({"x-ratelimit-remaining-tokens": "600000"})
    clock.now += 61
    pacer.observe({"x-ratelimit-remaining-tokens": "6000"})
    clock.now += 1
    pacer.observe({"x-ratelimit-remaining-tokens": "3000"})
    # Refill at the rate of the last window's largest remaining (6000/min), not the old 600k/min.
    assert pacer.wait_for(4500) == pytest.approx(15.0)


async def test_a_share_of_the_limit_is_left_to_interactive_callers() -> None:
    pacer, clock = Pacer(clock=(c := FakeClock(100.0)), sleep=c.sleep, reserve_share=0.25), c
    # 1000 tokens of the window are someone else's: live traffic is about, the whole share is held.
    pacer.observe({"x-ratelimit-remaining-tokens": "59000", "x-ratelimit-limit-tokens": "60000"})
    assert pacer.max_request_tokens() == 45000
    await pacer.acquire(44000, max_wait=0.1)  # the whole window less the reserve and the live use: no wait
    assert clock.sleeps == []
    with pytest.raises(Throttled):
        await pacer.acquire(1000, max_wait=0.1)
    # Interactive traffic used the reserve and more: jobs wait until remaining is above the reserve again.
    pacer2 = Pacer(clock=clock, sleep=clock.sleep, reserve_share=0.25)
    pacer2.observe({"x-ratelimit-remaining-tokens": "15000", "x-ratelimit-limit-tokens": "60000"})
    assert pacer2.wait_for(1000) == pytest.approx(1.0)


async def test_the_reserve_stays_free_until_the_jobs_own_sends_leave_the_window() -> None:
    # Issue #14 finding 7: a sliding window gives a charge back only when it is 60 s old. The pacer
    # assumed a steady refill, so 10 s after spending its whole share it spent the reserve too.
    # Nobody else is on the deployment here: what stays free is the idle headroom, 0.25 / 2 of 60k.
    pacer, clock = Pacer(clock=(c := FakeClock(100.0)), sleep=c.sleep, reserve_share=0.25), c
    pacer.observe({"x-ratelimit-remaining-tokens": "60000", "x-ratelimit-limit-tokens": "60000"})
    permit = await pacer.acquire(52500, max_wait=0.1)
    pacer.release(permit, {"x-ratelimit-remaining-tokens": "7500", "x-ratelimit-limit-tokens": "60000"})
    clock.now += 10
    assert pacer.wait_for(10000) == pytest.approx(50.0)
    clock.now += 50
    assert pacer.wait_for(52500) == 0.0


async def test_interactive_use_beside_the_job_is_left_to_expire_before_the_job_sends_again() -> None:
    pacer = Pacer(clock=(c := FakeClock(100.0)), sleep=c.sleep, reserve_share=0.25)
    pacer.observe({"x-ratelimit-remaining-tokens": "60000", "x-ratelimit-limit-tokens": "60000"})
    permit = await pacer.acquire(30000, max_wait=0.1)
    # Interactive callers spent 12000 meanwhile: 18000 remain, of which 15000 is the reserve.
    pacer.release(permit, {"x-ratelimit-remaining-tokens": "18000", "x-ratelimit-limit-tokens": "60000"})
    assert pacer.wait_for(3000) == 0.0
    # 6000 more would leave 12000 free, less than the reserve: wait for 3000 of the foreign use to go.
    assert pacer.wait_for(6000) == pytest.approx(3.0)


async def test_a_refused_request_does_not_count_against_the_window() -> None:
    pacer = Pacer(clock=(c := FakeClock(100.0)), sleep=c.sleep, reserve_share=0.25)
    pacer.observe({"x-ratelimit-remaining-tokens": "60000", "x-ratelimit-limit-tokens": "60000"})
    permit = await pacer.acquire(40000, max_wait=0.1)
    pacer.release(permit, {"x-ratelimit-remaining-tokens": "60000", "x-ratelimit-limit-tokens": "60000"},
                  charged=False)
    assert pacer.wait_for(45000) == 0.0


def test_a_chunk_that_does_not_fit_beside_the_window_is_cut_to_the_room_left() -> None:
    """A 2048-input chunk of ~60-token texts (~123k tokens) at 300k TPM, jobs may use 240k: sent whole it
    waits for a whole chunk's room and leaves the rest of the window idle; cut to the room it goes now."""
    from shared import tokens
    from shared.jobs.embed import _fit
    from shared.jobs.packing import Item

    pacer = Pacer(clock=FakeClock(100.0), reserve_share=0.2)
    # 140k of the window is used by others: 240k - 140k = 100k is left to jobs right now.
    pacer.observe({"x-ratelimit-remaining-tokens": "160000", "x-ratelimit-limit-tokens": "300000"})
    batch = [Item(i, "w" * 240) for i in range(2048)]
    first, rest = _fit(batch, pacer)
    assert first + rest == batch
    assert 99_000 <= sum(tokens.estimate(i.text or "") for i in first) <= 100_000
    pacer.observe({"x-ratelimit-remaining-tokens": "300000", "x-ratelimit-limit-tokens": "300000"})
    assert _fit(batch, pacer) == [batch], "a chunk that fits is sent whole"


# Issue #14, throughput goal: the reserve is held while live traffic uses the deployment, not always.
LIMIT_60K = {"x-ratelimit-limit-tokens": "60000"}


def remaining(tokens: int) -> dict[str, str]:
    return {"x-ratelimit-remaining-tokens": str(tokens), **LIMIT_60K}


def make_shared(share: float = 0.2) -> tuple[Pacer, FakeClock]:
    clock = FakeClock(100.0)
    return Pacer(clock=clock, sleep=clock.sleep, reserve_share=share), clock


async def test_with_nobody_else_on_the_deployment_jobs_keep_only_half_of_the_reserve() -> None:
    pacer, clock = make_shared(0.2)
    pacer.observe(remaining(60000))
    # 10% of 60k stays free for the first live calls; the other 10% of the reserve is not left idle.
    assert pacer.max_request_tokens() == 54000
    permit = await pacer.acquire(54000, max_wait=0.1)
    assert clock.sleeps == []
    pacer.release(permit, remaining(6000))  # the upstream charged exactly what we sent: nobody else
    assert pacer.max_request_tokens() == 54000
    with pytest.raises(Throttled):
        await pacer.acquire(1000, max_wait=0.1)


async def test_live_usage_restores_the_full_reserve_at_once_and_for_a_minute_after_it_was_last_seen() -> None:
    pacer, clock = make_shared(0.2)
    pacer.observe(remaining(60000))
    first = await pacer.acquire(30000, max_wait=0.1)
    pacer.release(first, remaining(30000))
    assert pacer.room_tokens() == 24000  # idle: 54k less our 30k
    second = await pacer.acquire(6000, max_wait=0.1)
    # 3000 used by someone else beside our 36000: live traffic. The room drops to 48k less it all.
    pacer.release(second, remaining(21000))
    assert pacer.max_request_tokens() == 48000
    assert pacer.room_tokens() == 48000 - 36000 - 3000
    clock.now += 30
    third = await pacer.acquire(1000, max_wait=0.1)
    pacer.release(third, remaining(60000 - 37000 - 2000))  # still there 30 s later: seen again
    clock.now += 59
    assert pacer.max_request_tokens() == 48000, "59 s after the last sighting the reserve is still held"
    clock.now += 2
    pacer.observe(remaining(60000))  # every charge has left the window; nobody else is seen
    assert pacer.max_request_tokens() == 54000


async def test_own_sends_still_in_flight_are_not_taken_for_live_traffic() -> None:
    pacer, _ = make_shared(0.2)
    pacer.observe(remaining(60000))
    first = await pacer.acquire(20000, max_wait=0.1)
    second = await pacer.acquire(20000, max_wait=0.1)
    # The upstream charged both before answering the first; the second is still in flight here.
    pacer.release(first, remaining(20000))
    assert pacer.max_request_tokens() == 54000
    pacer.release(second, remaining(20000))
    assert pacer.max_request_tokens() == 54000


async def test_an_own_send_the_upstream_holds_a_little_longer_is_not_live_traffic() -> None:
    # The upstream charges a send when it arrives and gives it back 60 s later: a little after the
    # pacer's own 60 s from sending. A response in between is not a sighting of someone else.
    pacer, clock = make_shared(0.2)
    pacer.observe(remaining(60000))
    early = await pacer.acquire(20000, max_wait=0.1)
    clock.now += 0.5
    pacer.release(early, remaining(40000))
    clock.now += 59.7  # 60.2 s after sending, 59.7 s after the answer: the upstream may still hold it
    late = await pacer.acquire(1000, max_wait=0.1)
    clock.now += 0.1
    pacer.release(late, remaining(39000))
    assert pacer.max_request_tokens() == 54000
    # The same usage reported with no send of ours left to explain it is someone else's.
    clock.now += 1
    pacer.observe(remaining(39000))
    assert pacer.max_request_tokens() == 48000


async def test_usage_within_the_noise_floor_is_not_live_traffic() -> None:
    pacer, _ = make_shared(0.2)
    pacer.observe(remaining(60000))
    permit = await pacer.acquire(10000, max_wait=0.1)
    pacer.release(permit, remaining(50000 - 500))  # 500 of 60k: an estimate a little off, not a caller
    assert pacer.max_request_tokens() == 54000


def test_no_reserve_stays_no_reserve() -> None:
    pacer, _ = make_shared(0.0)
    pacer.observe(remaining(30000))  # 30k used by others
    assert pacer.max_request_tokens() == 60000
    assert pacer.room_tokens() == 30000
