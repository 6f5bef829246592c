"""Benchmark: one large embedding job through the local stack against a TPM-limited simulator.

    python -m bench.embedding_jobs --inputs 100000 --tpm 300000
    python -m bench.embedding_jobs --inputs 2000          # smoke size for CI
    python -m bench.embedding_jobs --inputs 5000 --tpm 120000 --text-tokens 60 --outage 60
    python -m bench.embedding_jobs --matrix               # issue #14's table: TPM x text size, + recovery

Starts its own stack (Azurite, the simulator with ``--tpm``, the Functions host) on free ports,
queues one job with the producer helper (inputs go to a blob: claim check), polls it to the end,
checks the results (every input once, in order), and reports:

* tokens/s achieved and as a fraction of the limit (TPM / 60). The limit is a sliding one-minute
  window, so the first minute may burst up to the whole TPM and tokens come back a minute after
  they were spent: a job of T tokens cannot end sooner than ``60 * (ceil(T / TPM) - 1)`` seconds
  after it started. ``fraction_of_ideal`` is that bound divided by the time taken;
* upstream calls per 1,000 inputs (all attempts, 429s included) and the 429s received;
* the Functions host's peak resident memory (the kernel's high-water mark, VmHWM);
* with ``--outage S``: the simulator answers every embeddings call with 500 for ``S`` seconds,
  starting once the job has made progress; the job must still finish, exactly once.

Jobs leave ``EMBEDDING_JOBS_INTERACTIVE_SHARE`` of the limit to live traffic; without ``--live-every``
the bench has none, so it runs with ``--interactive-share 0`` unless told otherwise (the share is in
the report). ``bench/results/embedding_jobs_live_traffic.json`` comes from::

    python -m bench.embedding_jobs --inputs 5000 --tpm 120000 --text-tokens 60 --interactive-share 0.2 \
        --live-every 2 --output bench/results/embedding_jobs_live_traffic.json

Figures go to stdout and to ``bench/results/embedding_jobs.json``. Not a test: nothing is asserted
beyond the results being complete and correct.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "embedding_jobs.json"
MODEL = "text-embedding-3-small"


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


class LiveTraffic:
    """Interactive calls beside the job: one synchronous /embeddings request every ``every`` seconds."""

    def __init__(self, http: httpx.Client, every: float) -> None:
        self.http = http
        self.every = every
        self.results: list[tuple[int, float]] = []  # (status, seconds)
        self._stop = False

    def run_for(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and not self._stop:
            self.once()
            time.sleep(self.every)

    def run_until_stopped(self) -> None:
        while not self._stop:
            self.once()
            time.sleep(self.every)

    def stop(self) -> None:
        self._stop = True

    def once(self) -> None:
        started = time.perf_counter()
        response = self.http.post("/api/v1/embeddings", json={"model": MODEL, "input": FILLER * 2})
        self.results.append((response.status_code, time.perf_counter() - started))

    def summary(self) -> dict[str, Any]:
        latencies = sorted(seconds for _, seconds in self.results)
        p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)] if latencies else None
        return {"requests": len(self.results), "throttled_429": sum(1 for s, _ in self.results if s == 429),
                "p99_ms": None if p99 is None else round(p99 * 1000, 1)}


def _outage(sim_url: str, http: httpx.Client, job_id: str, seconds: float, marks: dict[str, float]) -> None:
    """Once the job has embedded something, make every embeddings call fail with 500 for ``seconds``."""
    while True:
        status = http.get(f"/api/v1/embeddings/jobs/{job_id}").json()
        if status.get("counts", {}).get("embedded") or status.get("status") in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    marks["outage_started"] = time.perf_counter()
    httpx.post(f"{sim_url}/_sim/faults", json={"kind": "status", "status": 500, "path": "embeddings", "count": 0})
    time.sleep(seconds)
    httpx.delete(f"{sim_url}/_sim/faults")
    marks["outage_ended"] = time.perf_counter()


def peak_rss_mb(pids: list[int]) -> float | None:
    """The largest VmHWM among the given processes, in MiB (Linux)."""
    peak = None
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    value = int(line.split()[1]) / 1024
                    peak = value if peak is None else max(peak, value)
        except OSError:
            continue
    return peak


def check_results(http: httpx.Client, job_id: str, count: int, dims: int) -> float:
    """Stream the results and check every input appears once, in order; returns seconds taken."""
    started = time.perf_counter()
    expected = 0
    with http.stream("GET", f"/api/v1/embeddings/jobs/{job_id}/results") as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line:
                continue
            row = json.loads(line)
            if row["index"] != expected or len(row["embedding"]) != dims:
                raise SystemExit(f"bad result line {expected}: {line[:200]}")
            expected += 1
    if expected != count:
        raise SystemExit(f"expected {count} result lines, got {expected}")
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    from devhost.ports import free_ports
    from devhost.stack import Stack
    from shared.jobs.client import submit_job_sync

    host, sim, blob, queue, table = free_ports(5)
    import threading

    env = {"OPENAI_MODELS": MODEL, "EMBEDDING_JOBS_QUEUE": "embedding-jobs",
           "EMBEDDING_JOBS_CONTAINER": "embedding-jobs", "EMBEDDING_JOBS_TABLE": "embeddingjobs",
           "EMBEDDING_JOBS_INTERACTIVE_SHARE": str(args.interactive_share)}
    sim_args = ["--tpm", str(args.tpm)] + (["--rpm", str(args.rpm)] if args.rpm else [])
    texts = make_texts(args.inputs, args.text_tokens)
    marks: dict[str, float] = {}
    with Stack(ROOT, host, simulator=True, simulator_port=sim, simulator_args=sim_args, azurite=True,
               azurite_ports=(blob, queue, table), env=env) as stack, \
            httpx.Client(base_url=stack.host_url, timeout=120) as http:
        assert stack.simulator_url and stack.storage_connection_string
        live_alone: dict[str, Any] | None = None
        live = None
        if args.live_every:
            alone = LiveTraffic(http, args.live_every)
            alone.run_for(args.live_baseline)
            live_alone = alone.summary()
            live = LiveTraffic(http, args.live_every)
        started = time.perf_counter()
        # Owned by the keyless local caller, so the status polls below (no function key) may read it.
        job_id = submit_job_sync(texts, model=MODEL, dimensions=args.dimensions, owner="anonymous",
                                 connection_string=stack.storage_connection_string)
        submitted = time.perf_counter()
        outage = None
        if args.outage:
            outage = threading.Thread(target=_outage, args=(stack.simulator_url, http, job_id, args.outage, marks),
                                      daemon=True)
            outage.start()
        live_thread = None
        if live is not None:
            live_thread = threading.Thread(target=live.run_until_stopped, daemon=True)
            live_thread.start()
        status: dict[str, Any] = {}
        while time.perf_counter() - started < args.timeout:
            status = http.get(f"/api/v1/embeddings/jobs/{job_id}").json()
            if status.get("status") in ("succeeded", "failed"):
                break
            time.sleep(0.5)
        finished = time.perf_counter()
        if outage is not None:
            outage.join(args.outage + 5)
        if live is not None and live_thread is not None:
            live.stop()
            live_thread.join(30)
        if status.get("status") != "succeeded":
            raise SystemExit(f"job did not succeed: {json.dumps(status)[:2000]}\nhost log: {stack.host_log}")
        stats = httpx.get(f"{stack.simulator_url}/_sim/stats", params={"limit": 0}).json()
        rss = peak_rss_mb(stack.pids().get("host", []))
        read_seconds = check_results(http, job_id, args.inputs, args.dimensions)

    elapsed = finished - started
    tokens = int(status["usage"]["prompt_tokens"])
    per_second_limit = args.tpm / 60.0
    achieved = tokens / elapsed
    ideal = 60.0 * (math.ceil(tokens / args.tpm) - 1)
    calls = int(stats["counts"].get("embeddings", 0))
    throttled = int(stats["statuses"].get("429", 0))
    return {
        "inputs": args.inputs,
        "text_tokens": round(tokens / args.inputs, 1),
        "interactive_share": args.interactive_share,
        "outage_s": round(marks["outage_ended"] - marks["outage_started"], 1) if "outage_ended" in marks else None,
        "dimensions": args.dimensions,
        "tpm_limit": args.tpm,
        "rpm_limit": args.rpm or None,
        "tokens": tokens,
        "elapsed_s": round(elapsed, 2),
        "submit_s": round(submitted - started, 2),
        "tokens_per_s": round(achieved, 1),
        "fraction_of_limit": round(achieved / per_second_limit, 3),
        "ideal_elapsed_s": round(ideal, 1),
        "fraction_of_ideal": round(ideal / elapsed, 3) if ideal else None,
        "upstream_calls": calls,
        "upstream_calls_per_1000_inputs": round(calls * 1000 / args.inputs, 2),
        "successful_calls": int(stats["statuses"].get("200", 0)),
        "throttled_429": throttled,
        "host_peak_rss_mb": None if rss is None else round(rss, 1),
        "results_read_s": round(read_seconds, 2),
        "live_traffic": None if live is None else {"every_s": args.live_every, "without_job": live_alone,
                                                     "beside_job": live.summary()},
        "python": sys.version.split()[0],
    }


# (TPM, tokens per text, outage seconds): each cell holds 2.5 minutes of the limit's tokens.
MATRIX = ((300_000, 60, 0), (300_000, 500, 0), (120_000, 60, 0), (120_000, 500, 0), (120_000, 60, 60))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--tpm", type=int, default=300_000, help="simulator tokens-per-minute limit")
    parser.add_argument("--rpm", type=int, default=0, help="simulator requests-per-minute limit (0: none)")
    parser.add_argument("--dimensions", type=int, default=64, help="vector size (results blob size scales with it)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--text-tokens", type=int, default=0, help="about this many tokens per text (0: ~8)")
    parser.add_argument("--outage", type=float, default=0, help="seconds of upstream 500s once the job has started")
    parser.add_argument("--interactive-share", type=float, default=0.0,
                        help="EMBEDDING_JOBS_INTERACTIVE_SHARE for the host (the bench sends no live traffic)")
    parser.add_argument("--live-every", type=float, default=0,
                        help="also send a synchronous /embeddings call every N seconds, first alone for "
                             "--live-baseline seconds, then beside the job (429s and p99 of each)")
    parser.add_argument("--live-baseline", type=float, default=60)
    parser.add_argument("--matrix", action="store_true",
                        help="run issue #14's cells (300k/120k TPM x ~60/~500-token texts, 2.5 minutes of tokens "
                             "each, and a 60 s outage at 120k TPM) and write them all")
    args = parser.parse_args(argv)
    report: dict[str, Any] | list[dict[str, Any]]
    if args.matrix:
        report = []
        for tpm, text_tokens, outage in MATRIX:
            cell = argparse.Namespace(**{**vars(args), "tpm": tpm, "text_tokens": text_tokens, "outage": outage,
                                         "inputs": int(2.5 * tpm / text_tokens)})
            report.append(run(cell))
            print(json.dumps(report[-1]), flush=True)
    else:
        report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
