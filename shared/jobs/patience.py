"""Outages cost a job time, not its life: how long a job keeps trying, and how often.

A chunk that fails for a passing reason (upstream 5xx, unreachable or late; a storage outage) is
not left to the host's ``maxDequeueCount`` (5 tries 10 s apart: under a minute of outage would
fail the job for good). It goes back to the queue with an exponential backoff (5 s doubling to
5 minutes, with jitter) and keeps coming back until the job's time budget
(``EMBEDDING_JOBS_TIME_BUDGET_HOURS``, counted from planning and carried in every chunk message
as ``deadline``) is spent. Throttling hand-backs are bounded by the same budget. Only then does the
job end ``failed``, with the lines it finished readable as partial results
(``shared.jobs.finalize.close_incomplete``).
"""

from __future__ import annotations

import random
import time

from shared.errors import GatewayError, UpstreamError
from shared.jobs.outage import is_outage

FIRST_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 300.0
_PASSING_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def deadline_from_now(budget_seconds: float) -> float:
    return round(time.time() + budget_seconds, 3)


def time_left(deadline: float | None) -> float:
    """Seconds until ``deadline`` (unix seconds); unbounded when there is none (a message from before budgets)."""
    return float("inf") if deadline is None else deadline - time.time()


def is_passing(exc: BaseException) -> bool:
    """A failure that waiting can cure: the upstream or storage is down, late, or overloaded."""
    if isinstance(exc, UpstreamError):
        return exc.response.status_code in _PASSING_STATUSES
    if isinstance(exc, GatewayError):
        return exc.status in _PASSING_STATUSES
    return is_outage(exc)


def backoff(attempts: int) -> float:
    """The wait before retry number ``attempts + 1``: 5 s, 10 s, 20 s, ... at most 5 minutes, jittered."""
    base = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * float(1 << min(attempts, 16)))
    return base * random.uniform(0.8, 1.2)
