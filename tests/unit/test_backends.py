"""Backend choice: priority, weight, untried first, cool-downs per deployment (learnt from failures),
affinity memory."""

from __future__ import annotations

from shared.backends import DEFAULT_COOLDOWN_5XX, DEFAULT_COOLDOWN_429, BackendPool
from shared.config import BackendConfig
from shared.retry import Failure
from tests.fakes import FakeClock

A = BackendConfig("a", "http://a/v1/", priority=0)
B = BackendConfig("b", "http://b/v1/", priority=1, weight=3)
C = BackendConfig("c", "http://c/v1/", priority=1, weight=1)


def test_priority_first_then_untried_ones() -> None:
    pool = BackendPool((A, B, C), clock=FakeClock(100.0), rng=lambda: 0.0)
    assert pool.pick("d", set()) == A
    assert pool.pick("d", {"a"}) == B
    assert pool.pick("d", {"a", "b"}) == C
    assert pool.pick("d", {"a", "b", "c"}) == A  # all tried: the best ready one again


def test_weights_split_a_priority_tier() -> None:
    pool = BackendPool((B, C), clock=FakeClock(100.0))
    assert BackendPool((B, C), clock=FakeClock(100.0), rng=lambda: 0.74).pick("d", set()) == B
    assert BackendPool((B, C), clock=FakeClock(100.0), rng=lambda: 0.76).pick("d", set()) == C
    assert pool.multiple


def test_cool_down_is_per_deployment_and_expires() -> None:
    clock = FakeClock(100.0)
    pool = BackendPool((A, B), clock=clock)
    pool.cool(A, "chat", 2.0)
    assert pool.pick("chat", set()) == B
    assert pool.pick("embed", set()) == A
    assert pool.untried_ready("chat", {"b"}) is False
    pool.cool(B, "chat", 5.0)
    assert pool.pick("chat", set()) is None
    assert pool.ready_in("chat") == 2.0
    clock.now += 2.0
    assert pool.pick("chat", set()) == A


def test_pinned_backend_only() -> None:
    pool = BackendPool((A, B), clock=FakeClock(100.0))
    assert pool.pick("d", set(), pinned="b") == B
    pool.cool(B, "d", 3.0)
    assert pool.pick("d", set(), pinned="b") is None
    assert pool.ready_in("d", pinned="b") == 3.0


def test_affinity_is_remembered_only_with_several_backends() -> None:
    single = BackendPool((A,), clock=FakeClock(100.0))
    single.remember("resp_1", "a")
    assert single.home_of("resp_1") is None
    pool = BackendPool((A, B), clock=FakeClock(100.0))
    pool.remember("resp_1", "b")
    assert pool.home_of("resp_1") == "b" and pool.home_of(None) is None


# Health: what the pool learns from a failed attempt.

def test_a_429_cools_for_what_it_asked_or_ten_seconds_even_alone() -> None:
    clock = FakeClock(100.0)
    single = BackendPool((A,), clock=clock)
    single.record_failure(A, "d", Failure.of_status(429, {"retry-after-ms": "1500", "retry-after": "9"}))
    assert single.ready_in("d") == 1.5
    pool = BackendPool((A, B), clock=clock)
    pool.record_failure(A, "d", Failure.of_status(429, {}))
    assert pool.ready_in("d", pinned="a") == DEFAULT_COOLDOWN_429


def test_a_5xx_or_a_lost_connection_cools_only_when_there_is_somewhere_else_to_go() -> None:
    clock = FakeClock(100.0)
    single = BackendPool((A,), clock=clock)
    single.record_failure(A, "d", Failure.of_status(503, {}))
    single.record_failure(A, "d", Failure(True))
    assert single.pick("d", set()) == A
    pool = BackendPool((A, B), clock=clock)
    pool.record_failure(A, "d", Failure.of_status(503, {"retry-after": "2"}))
    assert pool.ready_in("d", pinned="a") == 2.0
    pool.record_failure(B, "d", Failure(True))
    assert pool.ready_in("d", pinned="b") == DEFAULT_COOLDOWN_5XX


def test_refusals_say_nothing_about_health() -> None:
    pool = BackendPool((A, B), clock=FakeClock(100.0))
    for status in (400, 404, 413):
        pool.record_failure(A, "d", Failure.of_status(status, {}))
    pool.record_failure(A, "d", Failure.of_status(503, {"x-should-retry": "false"}))
    assert pool.pick("d", set()) == A
