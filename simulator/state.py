"""The one mutable object behind an app: live config plus everything the control API resets."""

from __future__ import annotations

import time

from .config import SimulatorConfig
from .embeddings_math import Embedder
from .faults import FaultQueue
from .limits import RateLimiter
from .stats import Stats
from .store import ResponseStore


class Simulator:
    """Shared state for all handlers of one app instance (single event loop, so no locks)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.initial_config = config
        self.config = config
        self.models = frozenset(config.models)
        self.created = int(time.time())
        self.limiter = RateLimiter(config.tpm, config.rpm, config.rpm_window_s)
        self.faults = FaultQueue()
        self.stats = Stats(config.recent_requests)
        self.store = ResponseStore(config.max_stored_responses)
        self.embedder = Embedder(config.seed)

    def apply_config(self, config: SimulatorConfig) -> None:
        """Switch to `config`, keeping rate-limit windows, stats and stored responses."""
        old = self.config
        self.config = config
        self.models = frozenset(config.models)
        self.limiter.configure(config.tpm, config.rpm, config.rpm_window_s)
        if config.recent_requests != old.recent_requests:
            self.stats.resize(config.recent_requests)
        self.store.capacity = max(1, config.max_stored_responses)
        if config.seed != old.seed:
            self.embedder = Embedder(config.seed)

    def reset(self, *, config: bool = False) -> None:
        """Forget stats, faults, stored responses and rate-limit charges (and config if asked)."""
        if config:
            self.apply_config(self.initial_config)
        self.stats.reset()
        self.faults.clear()
        self.store.clear()
        self.limiter.reset()
