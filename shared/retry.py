"""The one retry policy every upstream call goes through.

The ``openai`` SDK has retries of its own; our clients are built with ``max_retries=0`` so that this
policy is the only loop (two stacked loops would multiply attempts and ignore our deadline).

Rules, each covered by a unit test with a fake clock:
- retry connection errors, timeouts, 408, 429 and 5xx (an ``x-should-retry`` header overrides);
- wait ``retry-after-ms`` if the upstream sent it, else ``retry-after`` (seconds or HTTP date), else
  exponential backoff with full jitter;
- never sleep past the deadline: if the wait would end after it, give up now with the last error;
- never retry once a stream has begun: the policy wraps only the call that returns the response
  headers, so the body is read outside of it and a failure there is reported, not retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from shared.deadline import Deadline

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True, slots=True)
class Failure:
    """What the policy needs to know about a failed attempt."""

    retryable: bool
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


Classifier = Callable[[BaseException], Failure | None]


def parse_retry_after(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds the upstream asked us to wait, preferring the precise ``retry-after-ms``."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    after = headers.get("retry-after")
    if after:
        try:
            return max(0.0, float(after))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(after)
            except (TypeError, ValueError):
                return None
            return max(0.0, float(parsed.timestamp()) - now())
    return None


def status_is_retryable(status: int, headers: Mapping[str, str]) -> bool:
    should = headers.get("x-should-retry")
    if should == "true":
        return True
    if should == "false":
        return False
    return status in RETRYABLE_STATUSES


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by the request's deadline."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    # An upstream asking for longer than this is treated as "not now": the caller gets the 429
    # (with its retry-after) at once instead of a request held open (RETRY_MAX_WAIT_SECONDS).
    max_retry_after: float = 5.0

    def backoff(self, retry_number: int, rng: Callable[[], float] = random.random) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**retry_number))."""
        ceiling = min(self.max_delay, self.base_delay * (2.0**retry_number))
        return rng() * ceiling

    def delay(self, retry_number: int, failure: Failure, rng: Callable[[], float] = random.random) -> float | None:
        """How long to wait before the next attempt, or None when the failure must not be retried."""
        if not failure.retryable or retry_number + 1 >= self.max_attempts:
            return None
        asked = parse_retry_after(failure.headers)
        if asked is not None:
            return asked if asked <= self.max_retry_after else None
        return self.backoff(retry_number, rng)

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        classify: Classifier,
        deadline: Deadline,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        on_retry: Callable[[int, float, BaseException], None] | None = None,
        failover: Callable[[], bool] | None = None,
    ) -> T:
        """Call ``attempt`` until it succeeds, fails for good, or waiting would pass the deadline.

        ``classify`` maps an exception to a :class:`Failure` (None: not ours to judge, re-raised).
        ``failover`` says whether another backend can take the next attempt right now: then the
        next attempt goes at once, without waiting. The last error is re-raised unchanged, so
        callers see the upstream's own status and body.
        """
        retry_number = 0
        while True:
            try:
                return await attempt()
            except Exception as exc:
                failure = classify(exc)
                if failure is None or not failure.retryable or retry_number + 1 >= self.max_attempts:
                    raise
                wait = 0.0 if failover is not None and failover() else self.delay(retry_number, failure, rng)
                if wait is None or wait >= deadline.remaining():
                    raise
                if on_retry is not None:
                    on_retry(retry_number + 1, wait, exc)
                await sleep(wait)
                retry_number += 1
