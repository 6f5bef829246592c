"""Per-instance HTTP concurrency: what one worker process spends per open stream, and the default
``perInstanceConcurrency`` that follows for 2048 MB Flex Consumption instances (one vCPU).

Flex scales an HTTP app out when an instance holds ``perInstanceConcurrency`` requests at once, so
the setting decides how many relayed streams share one worker (and one billed memory slice, and
one cold start). A relayed stream mostly waits for tokens, so the question is what N streams cost
one process while they wait: its resident memory, its CPU, and the latency it adds to each event.

Method: the gateway in ``devhost`` (one process, pinned to CPU 0 as an instance's one vCPU), the
simulator paced like a real model (first token after 500 ms, then 40 tokens/s, 64 tokens: about
2.1 s per stream), and the load generator holding N streams open through the gateway and, at the
same time, N straight to the simulator (the pair isolates the hop, as in ``bench/scenarios.py``).
RSS is sampled from ``/proc`` every 100 ms while the streams run; CPU is the worker's CPU seconds
over the measured window divided by its length.

The choice of default is a rule, applied to the figures (``choose_default``): the largest measured
N at which the worker uses at most a quarter of the instance's core, at most a quarter of its
memory, and adds at most ``MAX_ADDED_FIRST_EVENT_P99_MS`` to the 99th percentile of time to first
event. A quarter of the core, because the Functions host process relays the same bytes to the
worker (half the core is theirs), and because the worker's CPU grows with the event rate: a
deployment streaming at 80 tokens/s, twice the paced rate here, costs about twice as much.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.procstat import status_kib
from bench.servers import CLIENT_CPU, Servers

LEVELS = (16, 64, 128, 256, 512)
SMOKE_LEVELS = (16,)
# A stream like a busy chat deployment's: first token after 500 ms, then 40 tokens/s.
TTFT_MS = 500.0
TOKEN_DELAY_MS = 25.0
REPLY_TOKENS = 64
# A 2048 MB Flex Consumption instance: one vCPU (Microsoft's Flex Consumption documentation).
INSTANCE_MEMORY_MIB = 2048
INSTANCE_CORES = 1.0
CPU_BUDGET = 0.25  # of the instance's cores: half for the Functions host, half again for 2x faster streams
MEMORY_BUDGET = 0.25  # of the instance's memory
MAX_ADDED_FIRST_EVENT_P99_MS = 50.0
SAMPLE_EVERY_S = 0.1
CLIENT_CORE_LIMIT = 90.0  # % of the simulator+generator core beyond which a level is not measurable
STARVED_LIMIT = 10.0  # % of wall time the worker may wait for its core (other jobs) and still count


def stream_seconds() -> float:
    return (TTFT_MS + TOKEN_DELAY_MS * (REPLY_TOKENS - 1)) / 1000.0


def rss_kib(pid: int) -> int | None:
    """Current resident set size of one process (VmRSS), in KiB; None when it is gone."""
    return status_kib(pid, "VmRSS")


def run_queue_wait_s(pid: int) -> float:
    """Seconds the process's threads have spent runnable but waiting for a CPU (``schedstat``).

    On a shared machine a pinned worker can be starved by other people's jobs: its CPU% then
    understates what it would use, and its latency overstates what it adds. This tells them apart.
    """
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


class RssSampler:
    """Samples a process's RSS on a thread while a blocking load run goes on; keeps the peak."""

    def __init__(self, pid: int, every: float = SAMPLE_EVERY_S) -> None:
        self.pid = pid
        self.every = every
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_kib(self.pid)
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float | None:
        return round(max(self.samples) / 1024, 1) if self.samples else None


def measure_level(servers: Servers, concurrency: int, *, warmup: float, duration: float) -> dict[str, Any]:
    """N paced streams through the gateway (and N direct beside them): memory, CPU, added latency."""
    gateway = servers.targets["gateway"]
    assert gateway.pid is not None
    body = scenarios.request_body(True, REPLY_TOKENS)
    cpu = CLIENT_CPU if servers.pinned else None
    idle = rss_kib(gateway.pid)  # after warm_up(): the SDK, clients and pools exist already
    waited = run_queue_wait_s(gateway.pid)
    started = time.perf_counter()
    with RssSampler(gateway.pid) as sampler:
        result = scenarios.run_loadgen(gateway, body=body, concurrency=concurrency, warmup=warmup,
                                       duration=duration, watch={"proxy": gateway.pid,
                                                                 "simulator": servers.simulator_pid},
                                       cpu=cpu, pair=servers.targets["direct"], stagger=stream_seconds())
    # Over the whole run (warm-up and drain included): the share of wall time spent waiting for CPU 0.
    starved = round(100.0 * (run_queue_wait_s(gateway.pid) - waited) / (time.perf_counter() - started), 1)
    direct = result.pop("pair")
    peak = sampler.peak_mib
    idle_mib = round(idle / 1024, 1) if idle is not None else None
    seconds = result["duration_s"] or float("nan")
    cpu_percent = round(100.0 * result["cpu_s"]["proxy"] / seconds, 1)
    # The simulator and the generator share the other core: past ~90% there, "direct" degrades
    # too and the level measures the client side, not the gateway.
    client_cpu = round(100.0 * (result["cpu_s"]["simulator"] + result["cpu_s"]["loadgen"]) / seconds, 1)
    added_first = {q: _minus(result["first_event_ms"].get(q), direct["first_event_ms"].get(q)) for q in ("p50", "p99")}
    added_total = {q: _minus(result["latency_ms"].get(q), direct["latency_ms"].get(q)) for q in ("p50", "p99")}
    per_stream_kib = (round((peak - idle_mib) * 1024 / concurrency, 1)
                      if peak is not None and idle_mib is not None else None)
    return {
        "concurrency": concurrency,
        "idle_rss_mib": idle_mib,
        "peak_rss_mib": peak,
        "rss_per_stream_kib": per_stream_kib,
        "cpu_percent": cpu_percent,
        "waiting_for_cpu_percent": starved,
        "client_core_cpu_percent": client_cpu,
        "cpu_ms_per_stream": result["cpu_s_per_1000"].get("proxy"),
        "streams_per_s": result["rps"],
        "direct_streams_per_s": direct["rps"],
        "errors": result["errors"] + direct["errors"],
        "first_event_ms": _pick(result["first_event_ms"]),
        "direct_first_event_ms": _pick(direct["first_event_ms"]),
        "added_first_event_ms": added_first,
        "added_latency_ms": added_total,
        "gap_ms": _pick(result["gap_ms"]),
        "direct_gap_ms": _pick(direct["gap_ms"]),
        "relay": scenarios.relay_verdict(result, direct)["state"],
    }


def warm_up(servers: Servers) -> None:
    """A few streams first, so the lazy SDK import and the client pools are not charged to level one."""
    gateway = servers.targets["gateway"]
    scenarios.run_loadgen(gateway, body=scenarios.request_body(True, REPLY_TOKENS), concurrency=8, warmup=0.5,
                          duration=stream_seconds() * 2, watch={}, cpu=CLIENT_CPU if servers.pinned else None)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def _pick(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary.get(key) for key in ("count", "p50", "p99")}


def unmeasurable(level: dict[str, Any]) -> list[str]:
    """Why this level says nothing about the gateway on this machine (empty: it does)."""
    reasons = []
    if level["client_core_cpu_percent"] > CLIENT_CORE_LIMIT:
        reasons.append(f"simulator + load generator used {level['client_core_cpu_percent']}% of their core")
    if level["waiting_for_cpu_percent"] > STARVED_LIMIT:
        reasons.append(f"the worker waited for its core {level['waiting_for_cpu_percent']}% of the time "
                       "(other jobs on the machine)")
    return reasons


def fits(level: dict[str, Any]) -> list[str]:
    """Why this level does not fit a 2048 MB instance (empty: it fits)."""
    problems: list[str] = []
    if level["errors"]:
        problems.append(f"{level['errors']} errors")
    if level["relay"] != "ok":
        problems.append(f"relay {level['relay']}")
    if level["cpu_percent"] is None or level["cpu_percent"] > 100.0 * CPU_BUDGET * INSTANCE_CORES:
        problems.append(f"CPU {level['cpu_percent']}% > {100 * CPU_BUDGET * INSTANCE_CORES:.0f}%")
    if level["peak_rss_mib"] is None or level["peak_rss_mib"] > MEMORY_BUDGET * INSTANCE_MEMORY_MIB:
        problems.append(f"RSS {level['peak_rss_mib']} MiB > {MEMORY_BUDGET * INSTANCE_MEMORY_MIB:.0f} MiB")
    added = level["added_first_event_ms"].get("p99")
    if added is None or added > MAX_ADDED_FIRST_EVENT_P99_MS:
        problems.append(f"added first-event p99 {added} ms > {MAX_ADDED_FIRST_EVENT_P99_MS:.0f} ms")
    return problems


def choose_default(levels: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The largest measured concurrency that fits (levels above the first misfit do not count)."""
    chosen: int | None = None
    reasons: dict[str, list[str]] = {}
    unmeasured: dict[str, list[str]] = {}
    for level in sorted(levels, key=lambda item: item["concurrency"]):
        problems = fits(level)
        if problems and unmeasurable(level):
            unmeasured[str(level["concurrency"])] = unmeasurable(level)
            break
        reasons[str(level["concurrency"])] = problems
        if problems:
            break
        chosen = level["concurrency"]
    return {"per_instance_concurrency": chosen, "misfits": {k: v for k, v in reasons.items() if v},
            "unmeasured": unmeasured,
            "rule": (f"largest measured N with worker CPU <= {CPU_BUDGET:.0%} of {INSTANCE_CORES:g} vCPU, peak RSS <= "
                     f"{MEMORY_BUDGET:.0%} of {INSTANCE_MEMORY_MIB} MB, added first-event p99 <= "
                     f"{MAX_ADDED_FIRST_EVENT_P99_MS:g} ms, no errors, events relayed as they arrive")}


MEDIAN_OF = ("cpu_percent", "cpu_ms_per_stream", "streams_per_s", "direct_streams_per_s",
             "waiting_for_cpu_percent", "client_core_cpu_percent")
MEDIAN_OF_NESTED = ("added_first_event_ms", "added_latency_ms", "first_event_ms", "direct_first_event_ms",
                    "gap_ms", "direct_gap_ms")


def combine(tries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One level's repeats as one row: medians over the runs the machine left alone.

    Runs in which the worker waited for its core more than ``STARVED_LIMIT`` % of the time are
    dropped (other people's jobs only add latency and take CPU away); if every run was disturbed,
    the least disturbed one stands alone and ``unmeasurable`` will say so. Memory comes from the
    first pass: levels rise there from a freshly warmed worker, while later passes start from
    whatever the largest level left allocated.
    """
    calm = [t for t in tries if t["waiting_for_cpu_percent"] <= STARVED_LIMIT]
    used = calm or [min(tries, key=lambda t: t["waiting_for_cpu_percent"])]
    row = dict(used[0])
    for key in MEDIAN_OF:
        row[key] = _median([t[key] for t in used])
    for key in MEDIAN_OF_NESTED:
        row[key] = {q: _median([t[key].get(q) for t in used]) for q in used[0][key]}
    row["errors"] = sum(t["errors"] for t in tries)
    states = [t["relay"] for t in used]
    row["relay"] = max(set(states), key=states.count)
    for key in ("idle_rss_mib", "peak_rss_mib", "rss_per_stream_kib"):
        row[key] = tries[0][key]
    row["runs"] = len(tries)
    row["runs_used"] = len(used)
    row["waiting_for_cpu_percent_all"] = [t["waiting_for_cpu_percent"] for t in tries]
    row["cpu_percent_all"] = [t["cpu_percent"] for t in tries]
    row["added_first_event_p99_ms_all"] = [t["added_first_event_ms"]["p99"] for t in tries]
    return row


def _median(values: Sequence[Any]) -> Any:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def run(servers: Servers, *, levels: Sequence[int] = LEVELS, repeats: int = 3, warmup: float = 3.0,
        duration: float = 8.0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every level ``repeats`` times against one running stack (levels interleaved), then one row
    per level (``combine``)."""
    servers.configure_simulator(ttft_ms=TTFT_MS, token_delay_ms=TOKEN_DELAY_MS, reply_tokens=REPLY_TOKENS)
    warm_up(servers)
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in levels}
    for rep in range(repeats):
        for concurrency in levels:
            started = time.perf_counter()
            level = measure_level(servers, concurrency, warmup=max(warmup, stream_seconds()), duration=duration)
            runs[concurrency].append(level)
            log(f"concurrency c={concurrency:<4} rep {rep + 1}/{repeats}: RSS {level['idle_rss_mib']} -> "
                f"{level['peak_rss_mib']} MiB, CPU {level['cpu_percent']}% "
                f"(waited {level['waiting_for_cpu_percent']}%), added first event p50/p99 "
                f"{level['added_first_event_ms']['p50']}/{level['added_first_event_ms']['p99']} ms, "
                f"relay {level['relay']}, errors {level['errors']} "
                f"({time.perf_counter() - started:.1f} s)")
    measured = [combine(tries) for tries in runs.values()]
    return {
        "repeats": repeats,
        "pacing": {"ttft_ms": TTFT_MS, "token_delay_ms": TOKEN_DELAY_MS, "reply_tokens": REPLY_TOKENS,
                   "stream_s": round(stream_seconds(), 3)},
        "instance": {"memory_mib": INSTANCE_MEMORY_MIB, "cores": INSTANCE_CORES},
        "levels": measured,
        "default": choose_default(measured),
    }


def markdown(result: dict[str, Any]) -> list[str]:
    """The table for bench/results (and, summarised, the README's deploy section)."""
    pacing = result["pacing"]
    out = [f"**Streams per worker** (one devhost worker on one core; medians of {result['repeats']} runs; upstream "
           "paced: first token "
           f"{pacing['ttft_ms']:g} ms, then {pacing['token_delay_ms']:g} ms per token, {pacing['reply_tokens']} "
           f"tokens, {pacing['stream_s']:g} s per stream; N streams through the gateway and N direct at the same "
           "time; added = through minus direct)", "",
           "| streams | RSS idle → peak MiB | KiB per stream | worker CPU % (waiting %) | CPU ms per stream | "
           "added first event p50 / p99 ms | added whole stream p50 / p99 ms | relay | other core % |",
           "|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for level in result["levels"]:
        first, total = level["added_first_event_ms"], level["added_latency_ms"]
        out.append(f"| {level['concurrency']} | {level['idle_rss_mib']} → {level['peak_rss_mib']} | "
                   f"{level['rss_per_stream_kib']} | {level['cpu_percent']} ({level['waiting_for_cpu_percent']}) | "
                   f"{level['cpu_ms_per_stream']:.2f} | {first['p50']} / {first['p99']} | {total['p50']} / "
                   f"{total['p99']} | {level['relay']}" + (f", {level['errors']} errors" if level["errors"] else "")
                   + f" | {level['client_core_cpu_percent']} |")
    default = result["default"]
    out += ["", f"Default `perInstanceConcurrency` for {result['instance']['memory_mib']} MB instances: "
            f"**{default['per_instance_concurrency']}** ({default['rule']})."]
    for level, problems in default["misfits"].items():
        out.append(f"Not {level}: {'; '.join(problems)}.")
    for level, reasons in default["unmeasured"].items():
        out.append(f"{level} and above not judged: {'; '.join(reasons)}.")
    return out
