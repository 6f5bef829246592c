"""Process-wide pacing by the upstream's own rate-limit signals.

Many chunk workers run concurrently in one instance (the queue trigger's batch). Without a shared
view each would learn about the limit by hitting it, so one 429 would become sixteen. The pacer
keeps what the upstream last said and what this process has sent since:

* ``x-ratelimit-remaining-tokens`` / ``-requests`` from every response, split into this process's
  own sends (each counted until it is 60 s old, when the sliding window gives it back) and the rest
  (live traffic, other instances), assumed to expire at ``limit / 60`` per second; the limit comes
  from ``x-ratelimit-limit-*`` when sent, else the largest ``remaining`` plus own use seen;
* ``retry-after-ms`` (else ``retry-after``) from a 429 blocks every worker until then.

A request that would have to wait longer than the caller's ``max_wait`` raises :class:`Throttled`
with the wait, and the caller hands its queue message back with that visibility delay instead of
holding a function invocation open. Costs are estimates (``shared.tokens.estimate``); being wrong
costs a 429 with a precise hint, which corrects the state at once.

Two rules keep the view current rather than historical:

* the limit is whatever the latest response says (a response without ``x-ratelimit-limit-*``
  clears it), and the largest ``remaining`` seen only stands in for it for one window: a limit
  lifted or raised is used from the next response on, never held back by what was learned before;
* while live traffic uses the deployment, ``reserve_share`` of the limit is left to it at every
  moment: jobs send only while their own use, the rest and the request fit in the limit less that
  share, so they step back by exactly that much, and a job never spends the reserve because it
  assumed its own earlier sends had already refilled. With nobody else seen for a minute, jobs
  keep only an idle headroom (half of the share) free: a reserve nobody uses would cap every
  job at 0.8 of the limit. The headroom lets the first live calls through at once; the next
  response shows their usage and the full share is held again (see :class:`_Budget`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from shared.lazy import process_wide
from shared.retry import parse_retry_after

WINDOW_SECONDS = 60.0
# Waits shorter than this are not worth a sleep (and rounding must not loop on them).
NEGLIGIBLE_WAIT = 0.005
# An observation without any known limit says nothing about later; after this it is dropped.
STALE_SECONDS = 5.0
# Usage the upstream reports beyond everything this process could have sent is live traffic only
# above this share of the limit: rounding and small differences between our token estimate and the
# upstream's count stay below it, and live use this small fits the idle headroom anyway.
LIVE_NOISE_SHARE = 0.01
# The full reserve is held this long after live traffic was last seen: its usage stays in the
# upstream's window for a minute, and a caller that paused for a few seconds is likely back.
LIVE_MEMORY_SECONDS = WINDOW_SECONDS
# With no live traffic seen, jobs leave this fraction of the reserve free (0.2 -> 10% of the limit):
# room for the first live calls until the response after them shows their usage. A quarter (5%)
# was measured too: live traffic at ~19% of the limit starting beside a job then got 291 429s of
# 712 calls, because a job notices it only at its next response and cannot take back what it spent.
IDLE_HEADROOM_FRACTION = 0.5
# Own sends are kept this long after their answer, for telling live traffic from our own charges
# in a response that was itself under way for a while (see ``_Budget.observe``). A response slower
# than the extra half window errs the safe way: our forgotten charges look like live traffic.
KEEP_ANSWERED_SECONDS = 1.5 * WINDOW_SECONDS


def left_free(reserve_share: float, *, live: bool) -> float:
    """The share of the limit jobs leave free: all of the reserve beside live traffic, else the idle headroom."""
    return reserve_share if live else reserve_share * IDLE_HEADROOM_FRACTION


class Throttled(Exception):
    """The deployment is throttled for longer than the caller wants to wait."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"throttled for {wait:.1f} s")
        self.wait = wait
        # Set when work was kept before the hand-back: such a pause is progress, not a failed try.
        self.progressed = False


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


@dataclass(slots=True)
class _Send:
    """One request this process sent: it counts against the window until ``sent_at + 60 s``."""

    sent_at: float
    cost: int
    answered: bool = False
    # When the answer came: the upstream charged the send at some moment in [sent_at, answered_at].
    answered_at: float = 0.0


@dataclass(slots=True)
class _Budget:
    """One limited resource (tokens or requests): the upstream's last word plus this process's sends.

    A sliding one-minute window gives back a charge only when it is 60 s old. The pacer knows
    exactly when its own sends expire, so it keeps them (``sends``) and splits the last reported
    usage into its own part and the rest (``foreign``: interactive callers, other instances),
    which is assumed to expire at the steady rate ``capacity / 60`` since nothing says when it was
    spent. Jobs may send only while ``own + foreign + cost`` stays within the capacity less the
    reserve, so the reserve is free at every moment of the window, not only on average.

    The reserve is the full ``reserve_share`` only while live traffic was seen in the last
    :data:`LIVE_MEMORY_SECONDS`, else :data:`IDLE_HEADROOM_FRACTION` of it. ``foreign`` cannot tell
    (it counts our unanswered sends as someone else's, to be safe when deciding the room), so a
    sighting is usage beyond every charge of ours the upstream may still hold when it answered:
    sends in flight, and answered ones until 60 s after their answer (it charged them at some moment
    before), both counted as ours. Errors go the safe way: an upstream charging more than our
    estimate, or another instance running jobs on the same deployment, is taken for live traffic
    and the full reserve is held; live traffic hidden behind our own in-flight sends shows in a
    later response.
    """

    remaining: int | None = None
    limit: int | None = None
    largest_seen: int = 0
    largest_seen_at: float = 0.0
    observed_at: float = 0.0
    # Usage not sent by this process, as of ``observed_at``.
    foreign: float = 0.0
    sends: deque[_Send] = field(default_factory=deque)
    # The share of the limit left to interactive callers while they use it (0 <= share < 1).
    reserve_share: float = 0.0
    # When a response last showed usage that was not this process's (None: never).
    live_seen_at: float | None = None

    def _forget_expired(self, now: float) -> None:
        while (self.sends and self.sends[0].answered
               and self.sends[0].answered_at + KEEP_ANSWERED_SECONDS <= now):
            self.sends.popleft()

    def own_usage(self, now: float, *, answered_only: bool = False) -> int:
        """This process's charges still in the window at ``now`` (in-flight requests always count)."""
        return sum(send.cost for send in self.sends
                   if (send.answered or not answered_only)
                   and (not send.answered or send.sent_at + WINDOW_SECONDS > now))

    def possibly_held_upstream(self, since: float) -> int:
        """The most of this process's charges the upstream can still count at ``since``.

        In flight: perhaps charged already. Answered: charged before the answer, so held until at
        most 60 s after it.
        """
        return sum(send.cost for send in self.sends
                   if not send.answered or send.answered_at + WINDOW_SECONDS > since)

    def share(self, now: float) -> float:
        """The share of the limit jobs leave free right now: all of the reserve while live traffic is about."""
        live = self.live_seen_at is not None and now - self.live_seen_at < LIVE_MEMORY_SECONDS
        return left_free(self.reserve_share, live=live)

    def send(self, cost: int, now: float) -> _Send:
        record = _Send(now, cost)
        self.sends.append(record)
        return record

    def observe(self, remaining: int | None, limit: int | None, now: float, sent_at: float | None = None) -> None:
        """Learn from one response's headers; ``sent_at``: when its request was sent (None: unknown)."""
        if remaining is None and limit is None:
            return  # a response without rate-limit headers (an error page) says nothing
        # The latest response is the truth: a limit it no longer states (lifted) or states
        # differently (raised, lowered) replaces the one learned before.
        self.limit = limit
        if remaining is not None:
            self._forget_expired(now)
            own = self.own_usage(now, answered_only=True)
            self.remaining = remaining
            self.observed_at = now
            seen = remaining + own  # the limit is at least what is left plus what we hold
            if seen >= self.largest_seen or now - self.largest_seen_at > WINDOW_SECONDS:
                self.largest_seen, self.largest_seen_at = seen, now
            # Sends still unanswered may already be charged upstream: counting them as foreign
            # errs on the side of the interactive callers, and decays like foreign usage.
            self.foreign = max(0.0, float(self.capacity() - remaining - own))
            # The upstream counted its usage at some moment after the request was sent: nothing of
            # ours it gave back before then can explain it. Unknown, assume no delay (the safe side).
            beyond_ours = self.capacity() - remaining - self.possibly_held_upstream(now if sent_at is None else sent_at)
            if beyond_ours > LIVE_NOISE_SHARE * self.capacity():
                self.live_seen_at = now

    def capacity(self) -> int:
        """The per-minute amount: the stated limit, else the largest seen in the last window."""
        return self.limit or self.largest_seen

    def usable(self, now: float) -> int:
        """What jobs may use of a full window: the capacity less the reserve held right now."""
        return int(self.capacity() * (1.0 - self.share(now)))

    def rate(self) -> float:
        """Steady expiry per second assumed for usage that is not this process's own."""
        return self.capacity() / WINDOW_SECONDS

    def room(self, now: float) -> int | None:
        """Tokens jobs could send right now beside everything in the window, or None when unknown."""
        if self.remaining is None or (self.limit is None and now - self.observed_at > STALE_SECONDS):
            return None
        self._forget_expired(now)
        foreign_now = max(0.0, self.foreign - self.rate() * (now - self.observed_at))
        return int(self.usable(now) - self.own_usage(now) - foreign_now)

    def wait_for(self, cost: int, now: float) -> float:
        if self.remaining is None or cost <= 0:
            return 0.0
        if self.limit is None and now - self.observed_at > STALE_SECONDS:
            return 0.0
        self._forget_expired(now)
        usable = self.usable(now)
        # A request larger than what jobs may use of a window can only wait for that much.
        cost = min(cost, usable or cost)
        rate = self.rate()
        foreign_now = max(0.0, self.foreign - rate * (now - self.observed_at))
        # Own usage only steps down as sends turn 60 s old; between two such moments, the
        # foreign part decays linearly. Find the first moment both fit beside ``cost``.
        expiries = sorted(send.sent_at + WINDOW_SECONDS for send in self.sends
                          if send.answered and send.sent_at + WINDOW_SECONDS > now)
        own = self.own_usage(now)
        start = now
        for step_at in [*expiries, None]:
            room = usable - cost - own
            if room >= 0:
                if foreign_now <= room:
                    return start - now
                if rate > 0:
                    at = start + (foreign_now - room) / rate
                    if step_at is None or at <= step_at:
                        return at - now
            if step_at is None:
                break
            foreign_now = max(0.0, foreign_now - rate * (step_at - start))
            own -= sum(send.cost for send in self.sends
                       if send.answered and send.sent_at + WINDOW_SECONDS == step_at)
            start = step_at
        # Only requests still in flight stand in the way: their answers will tell more.
        return STALE_SECONDS


@dataclass(slots=True)
class Permit:
    tokens: int
    token_send: _Send | None = None
    request_send: _Send | None = None
    released: bool = False


class Pacer:
    """Shared throttle state for one upstream deployment (one per deployment and process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, *, reserve_share: float = 0.0) -> None:
        self._clock = clock
        self._sleep = sleep
        self.tokens = _Budget(reserve_share=reserve_share)
        self.requests = _Budget(reserve_share=reserve_share)
        self.blocked_until = 0.0
        self.throttled_count = 0

    def wait_for(self, cost: int) -> float:
        now = self._clock()
        return max(self.blocked_until - now, self.tokens.wait_for(cost, now), self.requests.wait_for(1, now), 0.0)

    def has_signal(self) -> bool:
        """Whether the deployment has said anything about its token limit yet (in this process)."""
        return self.tokens.remaining is not None or self.tokens.limit is not None

    def room_tokens(self) -> int | None:
        """Tokens a request could carry right now without waiting (None: not known yet)."""
        now = self._clock()
        if self.blocked_until > now:
            return 0
        return self.tokens.room(now)

    def max_request_tokens(self) -> int | None:
        """The largest request jobs may send, when the limit is known: what they may use of a window."""
        return self.tokens.usable(self._clock()) if self.tokens.limit else None

    async def acquire(self, cost: int, max_wait: float) -> Permit:
        """Wait (at most ``max_wait``) until a request of ``cost`` tokens is likely to pass."""
        while True:
            wait = self.wait_for(cost)
            if wait <= NEGLIGIBLE_WAIT:
                now = self._clock()
                return Permit(cost, self.tokens.send(cost, now), self.requests.send(1, now))
            if wait > max_wait:
                raise Throttled(wait)
            await self._sleep(wait)

    def release(self, permit: Permit, headers: Mapping[str, str] | None, *, charged: bool = True) -> None:
        """The request is answered: its charge now expires 60 s after it was sent; learn from the headers.

        ``charged=False`` (a 429: refused before it was counted) forgets the send at once.
        """
        if not permit.released:
            permit.released = True
            for budget, send in ((self.tokens, permit.token_send), (self.requests, permit.request_send)):
                if send is None:
                    continue
                send.answered = True
                send.answered_at = self._clock()
                if not charged:
                    budget.sends.remove(send)
        if headers is not None:
            self.observe(headers, None if permit.token_send is None else permit.token_send.sent_at)

    def observe(self, headers: Mapping[str, str], sent_at: float | None = None) -> None:
        """Learn from a response's headers; ``sent_at``: when its request was sent, when known."""
        now = self._clock()
        self.tokens.observe(_header_int(headers, "x-ratelimit-remaining-tokens"),
                            _header_int(headers, "x-ratelimit-limit-tokens"), now, sent_at)
        self.requests.observe(_header_int(headers, "x-ratelimit-remaining-requests"),
                              _header_int(headers, "x-ratelimit-limit-requests"), now, sent_at)

    def throttled(self, headers: Mapping[str, str]) -> float:
        """A 429 arrived: block everyone for the time it asks; returns that wait."""
        self.throttled_count += 1
        self.observe(headers)
        wait = parse_retry_after(headers)
        if wait is None:
            wait = 1.0
        self.blocked_until = max(self.blocked_until, self._clock() + wait)
        return wait


@process_wide
def get_pacer(deployment: str) -> Pacer:
    """The process's pacer for one deployment (each deployment has its own TPM/RPM limits)."""
    from shared.config import get_settings

    return Pacer(reserve_share=get_settings().jobs_interactive_share)
