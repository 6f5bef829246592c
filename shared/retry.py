"""The one retry policy: pure decisions about a failed upstream attempt, no loop, no I/O.

The loop is a plain ``for`` in :func:`shared.upstream.send`, which asks :meth:`RetryPolicy.delay`
after each failure whether to try again and how long to wait first. The ``openai`` SDK's own
retries are off wherever it is used (``max_retries=0``), so attempts never multiply.

Rules, each covered by a unit test with a fake clock:
- retry connection errors, timeouts, 408, 429 and 5xx (an ``x-should-retry`` header overrides);
- wait ``retry-after-ms`` if the upstream sent it, else ``retry-after`` (seconds or HTTP date), else
  exponential backoff with full jitter; a wait longer than ``max_retry_after`` is not waited for;
- no wait at all when another backend can take the next attempt right now (failover);
- never sleep past the deadline: if the wait would end after it, give up now with the last error;
- never retry once a stream has begun: ``send`` returns once the headers are in, and the body is
  read by its caller, outside the loop.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shared.config import get_settings
from shared.lazy import process_wide

RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True, slots=True)
class Failure:
    """What the policy (and the backend pool) need to know about a failed attempt.

    ``status`` is the upstream's HTTP status, or None when no answer came (connection lost or
    refused, or a timeout).
    """

    retryable: bool
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of_status(cls, status: int, headers: Mapping[str, str]) -> Failure:
        return cls(status_is_retryable(status, headers), status, headers)


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

    def delay(self, attempt: int, failure: Failure, *, remaining: float, failover: bool = False,
              rng: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait before trying again after ``attempt`` (1 for the first) failed with
        ``failure``, or None to give up now and report it.

        ``remaining`` is what is left of the request's deadline; ``failover`` says another backend
        can take the next attempt right now, so it goes at once.
        """
        if not failure.retryable or attempt >= self.max_attempts:
            return None
        if failover:
            wait = 0.0
        else:
            asked = parse_retry_after(failure.headers)
            if asked is not None and asked > self.max_retry_after:
                return None
            wait = asked if asked is not None else self.backoff(attempt - 1, rng)
        return wait if wait < remaining else None


@process_wide
def get_retry_policy() -> RetryPolicy:
    """The process's policy, from RETRY_MAX_ATTEMPTS and RETRY_MAX_WAIT_SECONDS."""
    settings = get_settings()
    return RetryPolicy(max_attempts=settings.retry_max_attempts, max_retry_after=settings.retry_max_wait_seconds)
