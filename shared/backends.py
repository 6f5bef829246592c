"""Which upstream backend serves the next attempt, and what this process knows of their health.

Health is learnt here, from each failed attempt (:meth:`BackendPool.record_failure`): a backend
(deployment) that answered 429, or 5xx or no answer when there is somewhere else to go, is skipped
for exactly as long as its ``retry-after-ms``/``retry-after`` asked, or a default otherwise.
Cool-downs are per (backend, deployment), because Azure's limits are per deployment.

State is per process (per Functions instance): each instance learns a backend's cool-down from its
own first 429. A shared store (Table storage, Redis) would let one instance's 429 protect all the
others at once, at the price of a storage round trip on every request; the upstream's own headers
make the per-instance view converge within one request per instance.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.config import BackendConfig, Settings, get_settings
from shared.lazy import process_wide
from shared.retry import Failure, parse_retry_after

DEFAULT_COOLDOWN_429 = 10.0
DEFAULT_COOLDOWN_5XX = 5.0
AFFINITY_CAPACITY = 50_000


@dataclass(slots=True)
class BackendPool:
    """The configured backends and what this process knows about their health."""

    backends: tuple[BackendConfig, ...]
    clock: Callable[[], float] = time.monotonic
    rng: Callable[[], float] = random.random
    _cooling: dict[tuple[str, str | None], float] = field(default_factory=dict)
    _affinity: OrderedDict[str, str] = field(default_factory=OrderedDict)

    @classmethod
    def from_settings(cls, settings: Settings) -> BackendPool:
        return cls(tuple(sorted(settings.backends, key=lambda b: b.priority)))

    @property
    def multiple(self) -> bool:
        return len(self.backends) > 1

    def _ready(self, backend: BackendConfig, deployment: str | None, now: float) -> bool:
        return self._cooling.get((backend.name, deployment), 0.0) <= now

    def pick(self, deployment: str | None, tried: set[str], pinned: str | None = None) -> BackendConfig | None:
        """The next backend to try, or None when every candidate is cooling down.

        Untried backends come first (fail over at once), by priority then weight; once all have
        been tried, the best ready one is retried.
        """
        now = self.clock()
        candidates = [b for b in self.backends if (pinned is None or b.name == pinned)
                      and self._ready(b, deployment, now)]
        if not candidates:
            return None
        fresh = [b for b in candidates if b.name not in tried] or candidates
        best = fresh[0].priority
        tier = [b for b in fresh if b.priority == best]
        if len(tier) == 1:
            return tier[0]
        point = self.rng() * sum(b.weight for b in tier)
        for backend in tier:
            point -= backend.weight
            if point < 0:
                return backend
        return tier[-1]

    def untried_ready(self, deployment: str | None, tried: set[str], pinned: str | None = None) -> bool:
        """True when another backend could take the request right now (so: no waiting)."""
        now = self.clock()
        return any(b.name not in tried and (pinned is None or b.name == pinned) and self._ready(b, deployment, now)
                   for b in self.backends)

    def record_failure(self, backend: BackendConfig, deployment: str | None, failure: Failure) -> None:
        """Learn from a failed attempt: skip a throttled backend for as long as it asked (or 10 s),
        and a failing one (retryable status, or no answer) for as long as it asked (or 5 s) when
        there is another backend to go to; with one backend that would only turn a quick retry
        into a wait. Refusals (400, 404 ...) say nothing about health."""
        asked = parse_retry_after(failure.headers)
        if failure.status == 429:
            self.cool(backend, deployment, asked if asked is not None else DEFAULT_COOLDOWN_429)
        elif failure.retryable and self.multiple:
            self.cool(backend, deployment, asked if asked is not None else DEFAULT_COOLDOWN_5XX)

    def cool(self, backend: BackendConfig, deployment: str | None, seconds: float) -> None:
        key = (backend.name, deployment)
        self._cooling[key] = max(self._cooling.get(key, 0.0), self.clock() + seconds)

    def ready_in(self, deployment: str | None, pinned: str | None = None) -> float:
        """Seconds until the first candidate backend recovers (0 if one is ready)."""
        now = self.clock()
        waits = [self._cooling.get((b.name, deployment), 0.0) - now for b in self.backends
                 if pinned is None or b.name == pinned]
        return max(0.0, min(waits)) if waits else 0.0

    def remember(self, response_id: str, backend: str) -> None:
        """Responses affinity: a stored response lives on the backend that created it."""
        if not self.multiple:
            return
        self._affinity[response_id] = backend
        self._affinity.move_to_end(response_id)
        if len(self._affinity) > AFFINITY_CAPACITY:
            self._affinity.popitem(last=False)

    def home_of(self, response_id: str | None) -> str | None:
        return self._affinity.get(response_id) if response_id and self.multiple else None


@process_wide
def get_backend_pool() -> BackendPool:
    """The process's pool, from OPENAI_BACKENDS (or the one configured upstream)."""
    return BackendPool.from_settings(get_settings())
