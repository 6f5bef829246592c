"""Embedding jobs spend their owner's per-caller token budget (``CALLER_TOKENS_PER_MINUTE``).

Jobs are paced, not refused: before a chunk calls the upstream, its estimated tokens
(``shared.tokens.estimate``, what the upstream will probably charge) are reserved under the job's
payer (``shared.jobs.access.payer``); when the payer is over its budget the chunk raises
:class:`CallerPaced` and goes back to the queue (for the quota's wait, at most
:data:`RECHECK_SECONDS`, since reservations in flight often settle lower), so a job larger than a
minute's budget runs at the budget's rate instead of failing. After the call the reservation is
settled with the tokens the upstream reported.

The planner keeps chunks to half a minute's budget (:func:`chunk_budget`), so two fit in a window
and a chunk never waits for an empty one; a reservation is capped at the whole budget, so even a
single input larger than it is admitted once the window is clear (its real usage is then recorded).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import tokens
from shared.errors import GatewayError
from shared.jobs.pacer import Throttled
from shared.quota import CallerQuota, Reservation, get_quota

# When the quota gives no usable wait, look again after this long; and never wait longer than this
# before looking again.
DEFAULT_WAIT_SECONDS = 5.0
RECHECK_SECONDS = 10.0


class CallerPaced(Throttled):
    """The job's payer is over its per-minute token budget; the chunk waits for the window to slide.

    Expected pacing rather than trouble, so these hand-backs do not count towards a chunk's limit of
    deferrals for upstream throttling.
    """


@dataclass(slots=True)
class Hold:
    quota: CallerQuota
    reservation: Reservation


def chunk_budget() -> int:
    """The most tokens one chunk may hold: one upstream request, and half of a minute's caller budget."""
    from shared.config import get_settings

    limit = get_settings().caller_tokens_per_minute
    return min(tokens.REQUEST_TOKEN_BUDGET, max(1, limit // 2)) if limit > 0 else tokens.REQUEST_TOKEN_BUDGET


def _wait(error: GatewayError) -> float:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return min(RECHECK_SECONDS, max(0.0, float(error.headers[name]) * scale))
        except (KeyError, ValueError):
            continue
    return DEFAULT_WAIT_SECONDS


def reserve(payer: str, cost: int) -> Hold | None:
    """Reserve ``cost`` tokens for ``payer``; None when limits are off or there is nothing to send."""
    quota = get_quota()
    if quota is None or cost <= 0:
        return None
    try:
        return Hold(quota, quota.reserve(payer, min(cost, quota.limit)))
    except GatewayError as exc:
        if exc.status != 429:
            raise
        raise CallerPaced(_wait(exc)) from None


def settle(hold: Hold | None, actual: int) -> None:
    if hold is not None:
        hold.quota.settle(hold.reservation, actual)
