"""``latency.png``: latency percentiles against concurrency, direct and through each proxy.

matplotlib is imported here only (and with the Agg backend): the load generator and the smoke
test must not pay for it, and a machine without it still gets the JSON and the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {"direct": "#555555", "gateway": "#1f77b4", "floor": "#2ca02c", "litellm": "#d62728"}


def plot(results: dict[str, Any], path: Path) -> str | None:
    """Draw the figure; returns why not when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -r requirements-bench.txt)"
    load = results["load"]
    panels = [
        ("Non-streaming: latency", "json", "latency_ms", False),
        ("Streaming: time to first event", "stream", "first_event_ms", False),
        ("Added latency (proxy - direct), streaming", "stream", "latency_ms", True),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, (title, mode, key, added) in zip(axes, panels, strict=True):
        levels = load["paced"][mode]
        concurrency = [int(c) for c in levels]
        for target in ("direct@gateway", "gateway", "floor", "litellm"):
            if target not in next(iter(levels.values())) or (added and target.startswith("direct")):
                continue
            for q, style in (("p50", "-"), ("p99", "--")):
                values = []
                for c in levels:
                    agg = levels[c][target]
                    if added:
                        values.append(agg.get("added_latency_ms", {}).get(q))
                    else:
                        values.append(agg[key].get(q))
                ax.plot(concurrency, values, style, marker="o", color=COLORS[target.split("@")[0]],
                        label=f"{target.split('@')[0]} {q}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(concurrency, [str(c) for c in concurrency])
        ax.set_xlabel("concurrent connections")
        ax.set_ylabel("ms")
        ax.set_title(title)
        if added:
            ax.axhline(1.0, color="#999999", linewidth=0.8)
            ax.set_yscale("symlog", linthresh=1.0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    machine = results["meta"]["machine"]
    fig.suptitle(f"Gateway vs direct, the floor and LiteLLM — {machine['cpu_model']}, {machine['cpus']} cores, "
                 f"Python {machine['python']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
