"""Test doubles shared by the unit tests."""

from __future__ import annotations


class FakeClock:
    """A clock that only moves when told to, or when something sleeps on it (no real waiting)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
