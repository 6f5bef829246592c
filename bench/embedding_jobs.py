"""Benchmark: one embedding job through the local stack against a TPM-limited simulator.

    python -m bench.embedding_jobs --inputs 100000 --tpm 300000
    python -m bench.embedding_jobs --inputs 2000          # smoke size for CI
    python -m bench.embedding_jobs --inputs 5600 --tpm 120000 --text-tokens 60 --outage 60
    python -m bench.embedding_jobs --inputs 5600 --tpm 120000 --text-tokens 60 --kill-host --lease 60

``python -m bench --jobs-only`` runs the whole set (``bench/jobs.py``); this module is one run.
It starts its own stack (Azurite, the simulator with ``--tpm``, the Functions host) on free ports,
queues one job with the producer helper (inputs go to a blob: claim check), polls it to the end,
checks the results (every input once, in order), and reports:

* tokens/s over the whole job (submit to ``succeeded``) as a fraction of the limit (TPM / 60), and
  of the limit less what jobs leave free (``EMBEDDING_JOBS_INTERACTIVE_SHARE`` beside live traffic,
  half of it with none: ``shared.jobs.pacer.IDLE_HEADROOM_FRACTION``), which is all a job may use.
  The limit is a sliding one-minute window: the first minute may burst up to the whole usable limit
  and tokens come back a minute after they were spent, so a job of T tokens cannot end sooner than
  ``60 * (ceil(T / usable) - 1)`` seconds after it started; ``fraction_of_ideal`` is that bound
  divided by the time taken;
* upstream calls per 1,000 inputs (all attempts, 429s included) and the 429s received;
* planning time (submit until the job row says every chunk message is queued, polled every 0.25 s);
* the Functions host's peak resident memory (the kernel's high-water mark, VmHWM);
* with ``--outage S``: the simulator answers every embeddings call with 500 for ``S`` seconds,
  starting once ``--fault-at`` of the inputs are embedded; the job must still finish, exactly once;
* with ``--kill-host``: the host is killed (SIGKILL, as a crashed instance) at the same point and
  started again at once; its messages come back when their queue lease ends (``--lease`` seconds,
  the local host's ``DEVHOST_QUEUE_LEASE_SECONDS``; 600 s like Azure when not given);
* with ``--live-every S``: a synchronous ``/embeddings`` call every ``S`` seconds, first alone for
  ``--live-baseline`` seconds, then beside the job (429s, p50 and p99 of each).

Figures go to stdout (and to ``--output`` when given). Not a test: nothing is asserted beyond the results being
complete and correct (a job that does not succeed, or results that are not exactly once and in
order, exit non-zero).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.procstat import status_kib
from bench.stats import percentile

if TYPE_CHECKING:
    from devhost.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
MODEL = "text-embedding-3-small"
QUEUE, CONTAINER, TABLE = "embedding-jobs", "embedding-jobs", "embeddingjobs"
LEASE_ENV = "DEVHOST_QUEUE_LEASE_SECONDS"
POLL_SECONDS = 0.25

TOPICS = ("invoice", "support ticket", "release note", "product review", "meeting summary", "bug report")
FILLER = ("the customer asked about delivery times and the refund policy for damaged items while the "
          "support agent checked the warehouse records and promised a callback before the end of the week ")


def make_texts(count: int, text_tokens: int = 0) -> list[str]:
    """Distinct texts of a realistic-ish shape: about 8 tokens each, or about ``text_tokens`` (4 characters each)."""
    texts = [f"{TOPICS[i % len(TOPICS)]} {i}: customer asked about order {i * 7 % 100003}" for i in range(count)]
    if text_tokens <= 0:
        return texts
    size = 4 * text_tokens
    return [(text + " " + FILLER * (size // len(FILLER) + 1))[:size] for text in texts]


def latency_summary(results: list[tuple[int, float]]) -> dict[str, Any]:
    """Requests, 429s and latency percentiles (ms) of interactive calls."""
    latencies = sorted(seconds * 1000 for _, seconds in results)
    return {"requests": len(results), "throttled_429": sum(1 for status, _ in results if status == 429),
            "other_errors": sum(1 for status, _ in results if status not in (200, 429)),
            "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
            "p99_ms": round(percentile(latencies, 99), 1) if latencies else None}


class LiveTraffic:
    """Interactive calls: one synchronous /embeddings request every ``every`` seconds, on their own connection."""

    def __init__(self, base_url: str, every: float) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60)
        self.every = every
        self.results: list[tuple[int, float]] = []  # (status, seconds)
        self._stop = threading.Event()

    def run_for(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and not self._stop.is_set():
            self._once_then_wait()

    def run_until_stopped(self) -> None:
        while not self._stop.is_set():
            self._once_then_wait()

    def stop(self) -> None:
        self._stop.set()

    def _once_then_wait(self) -> None:
        started = time.perf_counter()
        try:
            response = self.http.post("/api/v1/embeddings", json={"model": MODEL, "input": FILLER * 2})
            status = response.status_code
        except httpx.HTTPError:
            status = 0
        taken = time.perf_counter() - started
        self.results.append((status, taken))
        self._stop.wait(max(0.0, self.every - taken))

    def summary(self) -> dict[str, Any]:
        return latency_summary(self.results)

    def close(self) -> None:
        self.http.close()


class LiveTrafficRun:
    """``--live-every``'s comparison, the same for a job and a batch: interactive calls measured alone
    for ``baseline`` seconds (at construction), then again on their own thread beside the background
    work, from :meth:`start` to :meth:`finish`."""

    def __init__(self, base_url: str, every: float, baseline: float) -> None:
        alone = LiveTraffic(base_url, every)
        alone.run_for(baseline)
        self.alone = alone.summary()
        alone.close()
        self.every = every
        self.beside = LiveTraffic(base_url, every)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.beside.run_until_stopped, daemon=True)
        self._thread.start()

    def finish(self) -> None:
        self.beside.stop()
        if self._thread is not None:
            self._thread.join(60)
        self.beside.close()

    def figures(self) -> dict[str, Any]:
        """The report's ``live_traffic`` entry (the README's live-traffic table reads these names)."""
        return {"every_s": self.every, "without_job": self.alone, "beside_job": self.beside.summary()}


def start_live_traffic(base_url: str, args: argparse.Namespace) -> LiveTrafficRun | None:
    """The live-traffic comparison when ``--live-every`` asks for one (its baseline is measured now)."""
    return LiveTrafficRun(base_url, args.live_every, args.live_baseline) if args.live_every else None


def run_and_report(run: Callable[[argparse.Namespace], dict[str, Any]], args: argparse.Namespace) -> int:
    """A bench run's ``main``: its figures as JSON on stdout, and in ``--output`` when given; exit status 0."""
    text = json.dumps(run(args), indent=2)
    print(text)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    return 0


@dataclass
class Marks:
    """Moments of the run (perf_counter seconds) and what the fault thread saw."""

    times: dict[str, float] = field(default_factory=dict)
    host_rss_before_kill_mb: float | None = None


def job_status(http: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job's status, or ``{}`` while the host cannot answer (killed and restarting)."""
    try:
        response = http.get(f"/api/v1/embeddings/jobs/{job_id}")
    except httpx.HTTPError:
        return {}
    return response.json() if response.status_code == 200 else {}


def _wait_for_progress(http: httpx.Client, job_id: str, inputs: int, fraction: float) -> bool:
    """Wait until ``fraction`` of the inputs are embedded; False when the job ended first (no fault then)."""
    while True:
        status = job_status(http, job_id)
        if status.get("status") in ("succeeded", "failed", "cancelled"):
            return False
        if status.get("counts", {}).get("embedded", 0) >= fraction * inputs:
            return True
        time.sleep(POLL_SECONDS)


def _outage(sim_url: str, http: httpx.Client, job_id: str, args: argparse.Namespace, marks: Marks) -> None:
    """Once ``--fault-at`` of the inputs are embedded, every embeddings call fails with 500 for ``--outage`` s."""
    if not _wait_for_progress(http, job_id, args.inputs, args.fault_at):
        return
    marks.times["fault_started"] = time.perf_counter()
    httpx.post(f"{sim_url}/_sim/faults", json={"kind": "status", "status": 500, "path": "embeddings", "count": 0})
    time.sleep(args.outage)
    httpx.delete(f"{sim_url}/_sim/faults")
    marks.times["fault_ended"] = time.perf_counter()


def _kill(stack: Stack, http: httpx.Client, job_id: str, args: argparse.Namespace, marks: Marks) -> None:
    """Once ``--fault-at`` of the inputs are embedded, SIGKILL the host and start a new one at once."""
    if not _wait_for_progress(http, job_id, args.inputs, args.fault_at):
        return
    marks.host_rss_before_kill_mb = peak_rss_mb(stack.pids().get("host", []))
    marks.times["fault_started"] = time.perf_counter()
    stack.kill_host()
    stack.restart_host()
    marks.times["fault_ended"] = time.perf_counter()


def peak_rss_mb(pids: list[int]) -> float | None:
    """The largest VmHWM among the given processes, in MiB (Linux)."""
    peaks = [kib / 1024 for kib in (status_kib(pid, "VmHWM") for pid in pids) if kib is not None]
    return max(peaks) if peaks else None


def stream_jsonl(http: httpx.Client, path: str) -> Iterator[tuple[str, Any]]:
    """Each non-empty line of a JSONL download, raw and parsed, as it streams (memory stays flat)."""
    with http.stream("GET", path) as response:
        response.raise_for_status()
        for raw in response.iter_lines():
            if raw:
                yield raw, json.loads(raw)


def check_results(http: httpx.Client, job_id: str, count: int, dims: int) -> float:
    """Stream the results and check every input appears once, in order; returns seconds taken."""
    started = time.perf_counter()
    expected = 0
    for line, row in stream_jsonl(http, f"/api/v1/embeddings/jobs/{job_id}/results"):
        if row["index"] != expected or len(row["embedding"]) != dims:
            raise SystemExit(f"bad result line {expected}: {line[:200]}")
        expected += 1
    if expected != count:
        raise SystemExit(f"expected {count} result lines, got {expected}")
    return time.perf_counter() - started


class PlanWatch:
    """Reads the job row in Table storage, on its own thread, until the planner marks every chunk queued."""

    def __init__(self, connection_string: str) -> None:
        from azure.data.tables import TableClient

        self.client = TableClient.from_connection_string(connection_string, TABLE)
        self.planned_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, job_id: str) -> None:
        self._thread = threading.Thread(target=self._watch, args=(job_id,), daemon=True)
        self._thread.start()

    def _watch(self, job_id: str) -> None:
        while not self._stop.is_set():
            try:
                enqueued = bool(self.client.get_entity(job_id, "job").get("enqueued"))
            except Exception:  # not written yet, or storage busy: the next poll tries again
                enqueued = False
            if enqueued:
                self.planned_at = time.perf_counter()
                return
            self._stop.wait(POLL_SECONDS)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.client.close()


def _stack_env(args: argparse.Namespace) -> dict[str, str]:
    env = {"OPENAI_MODELS": MODEL, "EMBEDDING_JOBS_QUEUE": QUEUE, "EMBEDDING_JOBS_CONTAINER": CONTAINER,
           "EMBEDDING_JOBS_TABLE": TABLE, "EMBEDDING_JOBS_INTERACTIVE_SHARE": str(args.interactive_share)}
    if args.lease:
        env[LEASE_ENV] = str(int(args.lease))
    return env


def run(args: argparse.Namespace) -> dict[str, Any]:
    from devhost.ports import free_ports
    from devhost.stack import Stack
    from shared.jobs.client import submit_job_sync

    host, sim, blob, queue, table = free_ports(5)
    sim_args = ["--tpm", str(args.tpm)] + (["--rpm", str(args.rpm)] if args.rpm else [])
    texts = make_texts(args.inputs, args.text_tokens)
    marks = Marks()
    with Stack(ROOT, host, simulator=True, simulator_port=sim, simulator_args=sim_args, azurite=True,
               azurite_ports=(blob, queue, table), env=_stack_env(args)) as stack, \
            httpx.Client(base_url=stack.host_url, timeout=120) as http:
        assert stack.simulator_url and stack.storage_connection_string
        live = start_live_traffic(stack.host_url, args)
        plan = PlanWatch(stack.storage_connection_string)
        started = time.perf_counter()
        # Owned by the keyless local caller, so the status polls below (no function key) may read it.
        job_id = submit_job_sync(texts, model=MODEL, dimensions=args.dimensions, owner="anonymous",
                                 connection_string=stack.storage_connection_string)
        submitted = time.perf_counter()
        plan.start(job_id)
        del texts
        fault = None
        if args.outage:
            fault = threading.Thread(target=_outage, args=(stack.simulator_url, http, job_id, args, marks), daemon=True)
        elif args.kill_host:
            fault = threading.Thread(target=_kill, args=(stack, http, job_id, args, marks), daemon=True)
        if fault is not None:
            fault.start()
        if live is not None:
            live.start()
        status: dict[str, Any] = {}
        while time.perf_counter() - started < args.timeout:
            status = job_status(http, job_id) or status
            if status.get("status") in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(POLL_SECONDS)
        finished = time.perf_counter()
        plan.close()
        if fault is not None:
            fault.join(args.outage + 120)
        if live is not None:
            live.finish()
        if status.get("status") != "succeeded":
            raise SystemExit(f"job did not succeed: {json.dumps(status)[:2000]}\nhost log: {stack.host_log}")
        stats = httpx.get(f"{stack.simulator_url}/_sim/stats", params={"limit": 0}).json()
        rss = peak_rss_mb(stack.pids().get("host", []))
        read_seconds = check_results(http, job_id, args.inputs, args.dimensions)

    report = figures(args, status, stats, started=started, submitted=submitted, finished=finished,
                     planned=plan.planned_at)
    report["host_peak_rss_mb"] = None if rss is None else round(rss, 1)
    report["results_read_s"] = round(read_seconds, 2)
    if "fault_started" in marks.times:
        report["fault"] = {
            "kind": "outage" if args.outage else "host killed",
            "at_s": round(marks.times["fault_started"] - started, 1),
            "length_s": round(marks.times["fault_ended"] - marks.times["fault_started"], 1),
            "lease_s": (args.lease or 600) if args.kill_host else None,
            "host_peak_rss_before_kill_mb": None if marks.host_rss_before_kill_mb is None
            else round(marks.host_rss_before_kill_mb, 1)}
    if live is not None:
        report["live_traffic"] = live.figures()
    return report


def figures(args: argparse.Namespace, status: dict[str, Any], stats: dict[str, Any], *, started: float,
            submitted: float, finished: float, planned: float | None) -> dict[str, Any]:
    """The run's figures from the job's final status and the simulator's counters."""
    elapsed = finished - started
    tokens = int(status["usage"]["prompt_tokens"])
    per_second_limit = args.tpm / 60.0
    from shared.jobs.pacer import left_free

    usable = args.tpm * (1.0 - left_free(args.interactive_share, live=bool(args.live_every)))
    achieved = tokens / elapsed
    ideal = 60.0 * (math.ceil(tokens / usable) - 1)
    calls = int(stats["counts"].get("embeddings", 0))
    return {
        "inputs": args.inputs,
        "text_tokens": round(tokens / args.inputs, 1),
        "interactive_share": args.interactive_share,
        "dimensions": args.dimensions,
        "tpm_limit": args.tpm,
        "rpm_limit": args.rpm or None,
        "tokens": tokens,
        "elapsed_s": round(elapsed, 2),
        "submit_s": round(submitted - started, 2),
        "planning_s": None if planned is None else round(planned - started, 2),
        "tokens_per_s": round(achieved, 1),
        "fraction_of_limit": round(achieved / per_second_limit, 3),
        "fraction_of_usable_limit": round(achieved / (usable / 60.0), 3),
        "ideal_elapsed_s": round(ideal, 1),
        "fraction_of_ideal": round(ideal / elapsed, 3) if ideal else None,
        "upstream_calls": calls,
        "upstream_calls_per_1000_inputs": round(calls * 1000 / args.inputs, 2),
        "successful_calls": int(stats["statuses"].get("200", 0)),
        "throttled_429": int(stats["statuses"].get("429", 0)),
        "upstream_5xx": sum(int(n) for code, n in stats["statuses"].items() if code.startswith("5")),
        "python": sys.version.split()[0],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--tpm", type=int, default=300_000, help="simulator tokens-per-minute limit")
    parser.add_argument("--rpm", type=int, default=0, help="simulator requests-per-minute limit (0: none)")
    parser.add_argument("--dimensions", type=int, default=64, help="vector size (results blob size scales with it)")
    parser.add_argument("--timeout", type=float, default=1800)
    add_shared_arguments(parser)
    parser.add_argument("--fault-at", type=float, default=0.3,
                        help="inject --outage / --kill-host once this fraction of the inputs is embedded")
    parser.add_argument("--outage", type=float, default=0, help="seconds of upstream 500s mid-job")
    parser.add_argument("--kill-host", action="store_true", help="SIGKILL the host once mid-job and restart it")
    parser.add_argument("--lease", type=float, default=0,
                        help=f"queue lease of the local host in seconds ({LEASE_ENV}; 0: its default, 600)")
    return parser.parse_args(argv)


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """The options a job run and a batch run (``bench/batch.py``) both take: texts, reserve, live traffic
    (read by :func:`start_live_traffic`) and ``--output`` (written by :func:`run_and_report`)."""
    parser.add_argument("--output", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--text-tokens", type=int, default=0, help="about this many tokens per text (0: ~8-13)")
    parser.add_argument("--interactive-share", type=float, default=0.2,
                        help="EMBEDDING_JOBS_INTERACTIVE_SHARE for the host (the app's default, 0.2)")
    parser.add_argument("--live-every", type=float, default=0,
                        help="also send a synchronous /embeddings call every N seconds, first alone for "
                             "--live-baseline seconds, then beside the job or batch (429s and p99 of each)")
    parser.add_argument("--live-baseline", type=float, default=60)


def main(argv: list[str] | None = None) -> int:
    return run_and_report(run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
