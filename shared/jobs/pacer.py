"""Process-wide pacing by the upstream's own rate-limit signals.

Many chunk workers run concurrently in one instance (the queue trigger's batch). Without a shared
view each would learn about the limit by hitting it, so one 429 would become sixteen. The pacer
keeps what the upstream last said and what this process has sent since:

* ``x-ratelimit-remaining-tokens`` / ``-requests`` from every response, minus the cost of requests
  still in flight, plus what the window has refilled since (at ``limit / 60`` per second; the limit
  comes from ``x-ratelimit-limit-*`` when sent, else the largest ``remaining`` seen, a lower bound);
* ``retry-after-ms`` (else ``retry-after``) from a 429 blocks every worker until then.

A request that would have to wait longer than the caller's ``max_wait`` raises :class:`Throttled`
with the wait, and the caller hands its queue message back with that visibility delay instead of
holding a function invocation open. Costs are estimates (``shared.tokens.estimate``); being wrong
costs a 429 with a precise hint, which corrects the state at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from shared.retry import parse_retry_after

WINDOW_SECONDS = 60.0
# Waits shorter than this are not worth a sleep (and rounding must not loop on them).
NEGLIGIBLE_WAIT = 0.005
# An observation without any known limit says nothing about later; after this it is dropped.
STALE_SECONDS = 5.0


class Throttled(Exception):
    """The deployment is throttled for longer than the caller wants to wait."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"throttled for {wait:.1f} s")
        self.wait = wait


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


@dataclass(slots=True)
class _Budget:
    """One limited resource (tokens or requests) as last reported by the upstream."""

    remaining: int | None = None
    limit: int | None = None
    largest_seen: int = 0
    observed_at: float = 0.0
    in_flight: int = 0

    def observe(self, remaining: int | None, limit: int | None, now: float) -> None:
        if limit is not None:
            self.limit = limit
        if remaining is not None:
            self.remaining = remaining
            self.observed_at = now
            self.largest_seen = max(self.largest_seen, remaining)

    def rate(self) -> float:
        """Refill per second of a sliding one-minute window."""
        return (self.limit or self.largest_seen) / WINDOW_SECONDS

    def wait_for(self, cost: int, now: float) -> float:
        if self.remaining is None or cost <= 0:
            return 0.0
        rate = self.rate()
        if self.limit is None and now - self.observed_at > STALE_SECONDS:
            return 0.0
        available = self.remaining - self.in_flight + rate * (now - self.observed_at)
        if available >= cost:
            return 0.0
        if rate <= 0:
            return STALE_SECONDS
        # A request larger than the whole window can only wait for an empty window.
        return (min(cost, self.limit or cost) - available) / rate


@dataclass(slots=True)
class Permit:
    tokens: int
    released: bool = False


class Pacer:
    """Shared throttle state for one upstream deployment (one per deployment and process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self.tokens = _Budget()
        self.requests = _Budget()
        self.blocked_until = 0.0
        self.throttled_count = 0

    def wait_for(self, cost: int) -> float:
        now = self._clock()
        return max(self.blocked_until - now, self.tokens.wait_for(cost, now), self.requests.wait_for(1, now), 0.0)

    def max_request_tokens(self) -> int | None:
        """The largest request that can ever pass, when the limit is known (a request above it never fits)."""
        return self.tokens.limit

    async def acquire(self, cost: int, max_wait: float) -> Permit:
        """Wait (at most ``max_wait``) until a request of ``cost`` tokens is likely to pass."""
        while True:
            wait = self.wait_for(cost)
            if wait <= NEGLIGIBLE_WAIT:
                self.tokens.in_flight += cost
                self.requests.in_flight += 1
                return Permit(cost)
            if wait > max_wait:
                raise Throttled(wait)
            await self._sleep(wait)

    def release(self, permit: Permit, headers: Mapping[str, str] | None) -> None:
        """The request is answered: drop its reservation and learn from the headers."""
        if not permit.released:
            permit.released = True
            self.tokens.in_flight -= permit.tokens
            self.requests.in_flight -= 1
        if headers is not None:
            self.observe(headers)

    def observe(self, headers: Mapping[str, str]) -> None:
        now = self._clock()
        self.tokens.observe(_header_int(headers, "x-ratelimit-remaining-tokens"),
                            _header_int(headers, "x-ratelimit-limit-tokens"), now)
        self.requests.observe(_header_int(headers, "x-ratelimit-remaining-requests"),
                              _header_int(headers, "x-ratelimit-limit-requests"), now)

    def throttled(self, headers: Mapping[str, str]) -> float:
        """A 429 arrived: block everyone for the time it asks; returns that wait."""
        self.throttled_count += 1
        self.observe(headers)
        wait = parse_retry_after(headers)
        if wait is None:
            wait = 1.0
        self.blocked_until = max(self.blocked_until, self._clock() + wait)
        return wait


_pacers: dict[str, Pacer] = {}


def get_pacer(deployment: str) -> Pacer:
    """The process's pacer for one deployment (each deployment has its own TPM/RPM limits)."""
    pacer = _pacers.get(deployment)
    if pacer is None:
        pacer = _pacers[deployment] = Pacer()
    return pacer


def reset_pacers() -> None:
    _pacers.clear()
