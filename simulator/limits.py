"""Azure-style TPM/RPM throttling with precise retry hints.

Model (documented because gateway tests depend on it):

* Tokens: a sliding 60 s window. A request is charged on arrival with its estimated prompt tokens
  plus its requested output budget (`max_tokens`, `max_completion_tokens`, `max_output_tokens`,
  or the configured natural reply length when absent). It is admitted when
  ``used_in_window + cost <= tpm``; otherwise 429 with the time until enough old charges expire.
  A single request costing more than `tpm` can never fit and gets a 60 s retry hint.
* Requests: Azure enforces RPM over short windows, so the simulator allows
  ``ceil(rpm * rpm_window_s / 60)`` requests per sliding `rpm_window_s` (default 10 s) window.
* Rejected requests are not charged. 0 disables a limit.
* `x-ratelimit-remaining-tokens` reports ``tpm - used`` in the 60 s window;
  `x-ratelimit-remaining-requests` reports what is left in the current short request window.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_WINDOW_S = 60.0
# Reported when a limit is disabled, so header parsers always find a number.
UNLIMITED_REMAINING_REQUESTS = 100_000
UNLIMITED_REMAINING_TOKENS = 10_000_000


_UNLIMITED_HEADERS = (
    (b"x-ratelimit-remaining-requests", str(UNLIMITED_REMAINING_REQUESTS).encode()),
    (b"x-ratelimit-remaining-tokens", str(UNLIMITED_REMAINING_TOKENS).encode()),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of one admission attempt."""

    allowed: bool
    reason: str = ""  # "tokens" or "requests" when refused
    retry_after_ms: int = 0


ALLOWED = Verdict(True)


class RateLimiter:
    """Sliding-window token and request limiter; single-threaded (the event loop) by design."""

    def __init__(
        self,
        tpm: int = 0,
        rpm: int = 0,
        rpm_window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._tokens: deque[tuple[float, int]] = deque()
        self._tokens_used = 0
        self._requests: deque[float] = deque()
        self.configure(tpm, rpm, rpm_window_s)

    def configure(self, tpm: int, rpm: int, rpm_window_s: float) -> None:
        """Change limits in place; charges already in the windows are kept."""
        self.tpm = tpm
        self.rpm = rpm
        self.rpm_window_s = rpm_window_s if rpm_window_s > 0 else 10.0
        self.request_quota = max(1, math.ceil(rpm * self.rpm_window_s / 60)) if rpm > 0 else 0

    def reset(self) -> None:
        """Forget all charges."""
        self._tokens.clear()
        self._tokens_used = 0
        self._requests.clear()

    def _expire(self, now: float) -> None:
        tokens = self._tokens
        cutoff = now - TOKEN_WINDOW_S
        while tokens and tokens[0][0] <= cutoff:
            self._tokens_used -= tokens.popleft()[1]
        requests = self._requests
        cutoff = now - self.rpm_window_s
        while requests and requests[0] <= cutoff:
            requests.popleft()

    def try_acquire(self, cost: int) -> Verdict:
        """Charge `cost` tokens and one request, or explain when to come back."""
        if not self.tpm and not self.rpm:
            return ALLOWED
        now = self._clock()
        self._expire(now)
        if self.rpm and len(self._requests) >= self.request_quota:
            wait = self._requests[0] + self.rpm_window_s - now
            return Verdict(False, "requests", _ms(wait))
        if self.tpm and self._tokens_used + cost > self.tpm:
            return Verdict(False, "tokens", _ms(self._token_wait(now, cost)))
        if self.rpm:
            self._requests.append(now)
        if self.tpm and cost > 0:
            self._tokens.append((now, cost))
            self._tokens_used += cost
        return ALLOWED

    def _token_wait(self, now: float, cost: int) -> float:
        if cost > self.tpm:
            return TOKEN_WINDOW_S
        excess = self._tokens_used + cost - self.tpm
        for at, n in self._tokens:
            excess -= n
            if excess <= 0:
                return at + TOKEN_WINDOW_S - now
        return TOKEN_WINDOW_S  # pragma: no cover - unreachable while the sum is consistent

    def remaining(self) -> tuple[int, int]:
        """(remaining requests, remaining tokens) for the response headers."""
        if self.tpm or self.rpm:
            self._expire(self._clock())
        req = self.request_quota - len(self._requests) if self.rpm else UNLIMITED_REMAINING_REQUESTS
        tok = self.tpm - self._tokens_used if self.tpm else UNLIMITED_REMAINING_TOKENS
        return max(0, req), max(0, tok)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """`x-ratelimit-*` headers, limits included only when set (as Azure does)."""
        if not self.tpm and not self.rpm:
            return list(_UNLIMITED_HEADERS)
        req, tok = self.remaining()
        out = [
            (b"x-ratelimit-remaining-requests", str(req).encode()),
            (b"x-ratelimit-remaining-tokens", str(tok).encode()),
        ]
        if self.rpm:
            out.append((b"x-ratelimit-limit-requests", str(self.rpm).encode()))
        if self.tpm:
            out.append((b"x-ratelimit-limit-tokens", str(self.tpm).encode()))
        return out


def _ms(seconds: float) -> int:
    """Round a wait up to whole milliseconds, at least 1 so a client never retries instantly."""
    return max(1, math.ceil(seconds * 1000))
