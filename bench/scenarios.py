"""Items 1-3 of the benchmark: the same requests direct, through the gateway and through LiteLLM.

Two simulator settings, because they answer different questions:

* **paced** (fixed time to first token, fixed gap between tokens): every request takes the same
  upstream time, so N connections are N concurrent users/streams and nothing saturates at low N.
  Latency percentiles, "added latency", time to first event and inter-event gaps come from here.
* **saturation** (no upstream delay at all): the closed loop then runs as fast as the slowest
  process allows; requests/s and CPU seconds per 1,000 requests come from here.

Paced runs are paired: while N connections go through a proxy, N more go direct to the same
simulator from the same generator process, in the same measured window, so noise from other jobs
on the machine hits both alike ("added latency" compares the two). Proxies take turns within each
repetition, and the spread across repetitions is reported next to every median. Saturation runs
load one target at a time (CPU per request must be attributable).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.servers import CLIENT_CPU, MODEL, Servers, Target
from bench.stats import PERCENTILES, difference

PROMPT = "Write a short greeting for the benchmark"


@dataclass(frozen=True)
class Plan:
    """Sizes of one benchmark run (``full`` or ``smoke``)."""

    concurrency: tuple[int, ...]
    repeats: int
    warmup_s: float
    duration_s: float
    duration_c1_s: float
    saturation_concurrency: int
    saturation_s: float
    # A stream like a small model's: 100 ms to the first token, then 50 tokens/s, 32 tokens.
    max_tokens: int = 32
    ttft_ms: float = 100.0
    token_delay_ms: float = 20.0

    @property
    def stream_seconds(self) -> float:
        """How long one paced request takes upstream (the simulator's schedule)."""
        return (self.ttft_ms + self.token_delay_ms * (self.max_tokens - 1)) / 1000.0


FULL = Plan(concurrency=(1, 16, 64, 256), repeats=3, warmup_s=1.5, duration_s=6.0, duration_c1_s=15.0,
            saturation_concurrency=64, saturation_s=5.0)
SMOKE = Plan(concurrency=(1, 16), repeats=1, warmup_s=0.8, duration_s=1.5, duration_c1_s=1.5,
             saturation_concurrency=16, saturation_s=1.0)
# ``--floor-only``: the gateway against the floor at the two levels, in about 7 minutes. Shorter
# requests than FULL (410 ms) give c=1 more samples; at c=64 that is ~160 req/s, well under saturation.
FLOOR = Plan(concurrency=(1, 64), repeats=3, warmup_s=1.0, duration_s=10.0, duration_c1_s=20.0,
             saturation_concurrency=64, saturation_s=0.0, ttft_ms=100.0, token_delay_ms=10.0)


def request_body(stream: bool, max_tokens: int) -> str:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}],
                            "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":"))


def run_loadgen(target: Target, *, body: str, concurrency: int, warmup: float, duration: float,
                watch: dict[str, int], cpu: int | None, client: str = "raw",
                pair: Target | None = None, stagger: float = 0.0) -> dict[str, Any]:
    """One load generator process against one target (and its ``pair`` at the same time)."""
    argv = [sys.executable, "-m", "bench.loadgen", "--url", target.url, "--body", body,
            "--concurrency", str(concurrency), "--warmup", str(warmup), "--duration", str(duration),
            "--client", client, "--stagger", str(stagger)]
    for header in target.headers:
        argv += ["--header", header]
    if pair is not None:
        argv += ["--pair-url", pair.url]
        for header in pair.headers:
            argv += ["--pair-header", header]
    for name, pid in watch.items():
        argv += ["--watch", f"{name}={pid}"]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=warmup + duration + 90,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return result


def _watch(servers: Servers, target: Target) -> dict[str, int]:
    watch = {"simulator": servers.simulator_pid}
    if target.pid is not None:
        watch["proxy"] = target.pid
    return watch


def _median_summary(runs: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """Median across repetitions of each percentile of ``key``, with the (min, max) spread."""
    out: dict[str, Any] = {}
    summaries = [run[key] for run in runs if run.get(key, {}).get("count")]
    if not summaries:
        return {"count": 0}
    out["count"] = sum(s["count"] for s in summaries)
    for stat in ("mean", *(f"p{q}" for q in PERCENTILES)):
        values = [s[stat] for s in summaries]
        out[stat] = round(statistics.median(values), 3)
        out[f"{stat}_range"] = [min(values), max(values)]
    return out


def _aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    rps = [r["rps"] for r in runs]
    agg: dict[str, Any] = {
        "repeats": len(runs),
        "rps": round(statistics.median(rps), 1),
        "rps_range": [min(rps), max(rps)],
        "errors": sum(r["errors"] for r in runs),
        "latency_ms": _median_summary(runs, "latency_ms"),
        "first_event_ms": _median_summary(runs, "first_event_ms"),
        "gap_ms": _median_summary(runs, "gap_ms"),
        "self_reported_overhead_ms": _median_summary(runs, "self_reported_overhead_ms"),
        "loadavg_1m": [r["loadavg_1m"] for r in runs],
    }
    per_1000: dict[str, Any] = {}
    for name in ("proxy", "simulator", "loadgen"):
        values = [r["cpu_s_per_1000"].get(name) for r in runs if r["cpu_s_per_1000"].get(name) is not None]
        if values:
            per_1000[name] = round(statistics.median(values), 4)
    agg["cpu_s_per_1000"] = per_1000
    return agg


def run_matrix(servers: Servers, plan: Plan, *, log: Callable[[str], None], saturation: bool = True) -> dict[str, Any]:
    """Paced runs at each concurrency (latency, streaming) and saturation runs (throughput, CPU)."""
    cpu = CLIENT_CPU if servers.pinned else None
    targets = list(servers.targets.values())
    results: dict[str, Any] = {"plan": plan.__dict__, "paced": {}, "saturation": {}}

    servers.configure_simulator(ttft_ms=plan.ttft_ms, token_delay_ms=plan.token_delay_ms, reply_tokens=plan.max_tokens)
    direct = servers.targets["direct"]
    proxies = [t for t in targets if t.name != "direct"]
    for mode in ("json", "stream"):
        body = request_body(mode == "stream", plan.max_tokens)
        for concurrency in plan.concurrency:
            duration = plan.duration_c1_s if concurrency == 1 else plan.duration_s
            runs: dict[str, list[dict[str, Any]]] = {}
            for rep in range(plan.repeats):
                for proxy in proxies:
                    started = time.perf_counter()
                    result = run_loadgen(proxy, body=body, concurrency=concurrency, warmup=plan.warmup_s,
                                         duration=duration, watch=_watch(servers, proxy), cpu=cpu, pair=direct,
                                         stagger=plan.stream_seconds)
                    paired = result.pop("pair")
                    paired.update(cpu_s_per_1000={}, loadavg_1m=result["loadavg_1m"])
                    runs.setdefault(proxy.name, []).append(result)
                    runs.setdefault(f"direct@{proxy.name}", []).append(paired)
                    log(f"paced {mode:6} c={concurrency:<3} rep {rep + 1}/{plan.repeats} {proxy.name:8} "
                        f"p50={result['latency_ms'].get('p50')} p99={result['latency_ms'].get('p99')} ms | direct "
                        f"p50={paired['latency_ms'].get('p50')} p99={paired['latency_ms'].get('p99')} ms | "
                        f"errors={result['errors'] + paired['errors']} ({time.perf_counter() - started:.1f} s)")
            results["paced"].setdefault(mode, {})[str(concurrency)] = _summarize_level(runs)

    if not saturation:
        return results
    servers.configure_simulator(ttft_ms=0, token_delay_ms=0, reply_tokens=plan.max_tokens)
    for mode in ("json", "stream"):
        body = request_body(mode == "stream", plan.max_tokens)
        runs = {t.name: [] for t in targets}
        for rep in range(plan.repeats):
            for target in targets:
                result = run_loadgen(target, body=body, concurrency=plan.saturation_concurrency,
                                     warmup=plan.warmup_s, duration=plan.saturation_s,
                                     watch=_watch(servers, target), cpu=cpu)
                runs[target.name].append(result)
                log(f"saturation {mode:6} c={plan.saturation_concurrency} rep {rep + 1}/{plan.repeats} "
                    f"{target.name:8} rps={result['rps']:8.1f} cpu/1000={result['cpu_s_per_1000']}")
        results["saturation"][mode] = {name: _aggregate(r) for name, r in runs.items()}
    return results


def _summarize_level(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Aggregate each target; compare each proxy with the direct runs made at the same time as it."""
    level: dict[str, Any] = {name: _aggregate(r) for name, r in runs.items()}
    for name, agg in list(level.items()):
        direct = level.get(f"direct@{name}")
        if name.startswith("direct") or direct is None:
            continue
        agg["added_latency_ms"] = difference(agg["latency_ms"], direct["latency_ms"])
        if agg["first_event_ms"].get("count"):
            agg["added_first_event_ms"] = difference(agg["first_event_ms"], direct["first_event_ms"])
            agg["relay"] = relay_verdict(agg, direct)
    return level


def relay_verdict(through: dict[str, Any], direct: dict[str, Any]) -> dict[str, Any]:
    """Does a proxy relay events as they come, or buffer them? Judged against its direct pair.

    A buffering relay holds events back and sends them in a burst: its median inter-event gap
    collapses towards 0 (direct shows the simulator's token delay) and its first event arrives
    late, near the end of the stream. Either sign fails the check, unless the proxy is saturated
    (it completed clearly fewer requests than its direct pair): then events queue behind the CPU
    and leave in batches too, which is reported as "saturated", a capacity limit, not buffering.
    """
    direct_gap = direct["gap_ms"].get("p50") or 0.0
    gap = through["gap_ms"].get("p50") or 0.0
    direct_first = direct["first_event_ms"].get("p50") or 0.0
    stream_body = (direct["latency_ms"].get("p50") or 0.0) - direct_first
    late_first = (through["first_event_ms"].get("p50") or 0.0) - direct_first
    gap_ok = direct_gap <= 0 or gap >= 0.5 * direct_gap
    first_ok = stream_body <= 0 or late_first <= 0.5 * stream_body
    saturated = bool(direct.get("rps")) and through.get("rps", 0.0) < 0.9 * direct["rps"]
    if gap_ok and first_ok:
        state, why = "ok", "relays events as they arrive"
    elif saturated:
        state = "saturated"
        why = (f"out of CPU ({through['rps']:.0f} req/s vs {direct['rps']:.0f} direct): events queue and leave in "
               "batches")
    else:
        state = "buffers"
        why = "events arrive in bursts (gaps collapsed)" if not gap_ok else "first event held back"
    return {
        "ok": state == "ok",
        "state": state,
        "gap_p50_ms": gap,
        "direct_gap_p50_ms": direct_gap,
        "first_event_delay_p50_ms": round(late_first, 3),
        "why": why,
    }
