"""Percentiles and summaries, with no numpy: the generator must stay small and start fast."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

PERCENTILES = (50, 90, 95, 99)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (as numpy's default)."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Iterable[float], scale: float = 1.0) -> dict[str, Any]:
    """count, mean, min, p50/p90/p95/p99 and max, scaled (e.g. 1000 for s -> ms), rounded to µs."""
    ordered = sorted(v * scale for v in values)
    if not ordered:
        return {"count": 0}
    result: dict[str, Any] = {"count": len(ordered), "mean": round(sum(ordered) / len(ordered), 3),
                              "min": round(ordered[0], 3)}
    for q in PERCENTILES:
        result[f"p{q}"] = round(percentile(ordered, q), 3)
    result["max"] = round(ordered[-1], 3)
    return result


def difference(through: dict[str, Any], direct: dict[str, Any]) -> dict[str, float | None]:
    """Percentile-by-percentile difference of two summaries (the 'added latency' of a hop).

    Requests are not paired (they ran at different times), so this compares distributions:
    p50 through the gateway minus p50 direct, and so on.
    """
    out: dict[str, float | None] = {}
    for q in PERCENTILES:
        key = f"p{q}"
        a, b = through.get(key), direct.get(key)
        out[key] = None if a is None or b is None else round(a - b, 3)
    return out


def pooled(summaries: Sequence[dict[str, Any]], key: str) -> tuple[float, float] | None:
    """(min, max) of one statistic across repeated runs: the spread we report as noise."""
    values = [s[key] for s in summaries if s.get(key) is not None and not math.isnan(s[key])]
    return (min(values), max(values)) if values else None
