"""Per-caller token limits: reserve, settle, sliding minute, retry-after, cross-instance sync."""

from __future__ import annotations

import pytest

from shared.callers import identify
from shared.errors import GatewayError
from shared.quota import CallerQuota
from tests.fakes import FakeClock


class MemoryStore:
    """Stands in for Table storage: counts per (caller, minute, instance)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int, str], int] = {}

    async def write(self, caller: str, minute: int, instance: str, tokens: int) -> None:
        self.rows[(caller, minute, instance)] = tokens

    async def read_others(self, caller: str, minute: int, instance: str) -> int:
        return sum(t for (c, m, i), t in self.rows.items() if c == caller and m == minute and i != instance)


def test_reserve_until_the_limit_then_429_with_retry_after() -> None:
    clock = FakeClock(6000.0)  # the start of a minute
    quota = CallerQuota(1000, clock=clock)
    quota.reserve("a", 600)
    quota.reserve("a", 300)
    assert quota.remaining("a") == 100
    with pytest.raises(GatewayError) as info:
        quota.reserve("a", 200)
    error = info.value
    assert error.status == 429 and error.code == "caller_token_limit_exceeded"
    # 900 used now: the next minute starts in 60 s, then 900 fades until 900*(1-f)+200 <= 1000 (f >= 1/9)
    assert int(error.headers["retry-after"]) == 67
    assert error.headers["x-caller-ratelimit-remaining-tokens"] == "0"


def test_callers_are_independent() -> None:
    quota = CallerQuota(100, clock=FakeClock(0.0))
    quota.reserve("a", 100)
    quota.reserve("b", 100)
    with pytest.raises(GatewayError):
        quota.reserve("a", 1)


def test_settle_replaces_the_estimate_with_real_usage() -> None:
    quota = CallerQuota(1000, clock=FakeClock(0.0))
    reservation = quota.reserve("a", 800)
    quota.settle(reservation, 50)
    assert quota.remaining("a") == 950
    quota.settle(quota.reserve("a", 10), None)  # no usage reported: the estimate stands
    assert quota.remaining("a") == 940


def test_the_window_slides() -> None:
    clock = FakeClock(60.0 * 100)
    quota = CallerQuota(1000, clock=clock)
    quota.reserve("a", 1000)
    clock.now += 60 + 30  # half of last minute is still inside the window
    assert quota.remaining("a") == 500
    clock.now += 30
    assert quota.remaining("a") == 1000


def test_a_request_larger_than_the_limit_is_a_400() -> None:
    with pytest.raises(GatewayError) as info:
        CallerQuota(100, clock=FakeClock(0.0)).reserve("a", 101)
    assert info.value.status == 400


async def test_instances_share_counts_through_the_store() -> None:
    clock, store = FakeClock(120.0), MemoryStore()
    one = CallerQuota(1000, store=store, clock=clock, instance="one")
    two = CallerQuota(1000, store=store, clock=clock, instance="two")
    one.reserve("a", 800)
    await one.sync("a")
    await two.sync("a")
    assert two.remaining("a") == 200
    with pytest.raises(GatewayError):
        two.reserve("a", 300)


def test_caller_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    spoofed = {"x-ms-client-principal-id": "admin", "x-functions-key": "k1"}
    assert identify(spoofed, {}).startswith("key:")  # principal headers are not trusted without Easy Auth
    assert "k1" not in identify(spoofed, {})
    assert identify({}, {"code": "k1"}) == identify({"x-functions-key": "k1"}, {})
    assert identify({}, {}) == "anonymous"
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    assert identify(spoofed, {}) == "principal:admin"
