"""Benchmark: one large embedding job through the local stack against a TPM-limited simulator.

    python -m bench.embedding_jobs --inputs 100000 --tpm 300000
    python -m bench.embedding_jobs --inputs 2000          # smoke size for CI

Starts its own stack (Azurite, the simulator with ``--tpm``, the Functions host) on free ports,
queues one job with the producer helper (inputs go to a blob: claim check), polls it to the end,
checks the results (every input once, in order), and reports:

* tokens/s achieved and as a fraction of the limit (TPM / 60). The limit is a sliding one-minute
  window, so the first minute may burst up to the whole TPM and tokens come back a minute after
  they were spent: a job of T tokens cannot end sooner than ``60 * (ceil(T / TPM) - 1)`` seconds
  after it started. ``fraction_of_ideal`` is that bound divided by the time taken;
* upstream calls per 1,000 inputs (all attempts, 429s included) and the 429s received;
* the Functions host's peak resident memory (the kernel's high-water mark, VmHWM).

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


def make_texts(count: int) -> list[str]:
    """Short, distinct texts of a realistic-ish shape (about 8 tokens each)."""
    topics = ("invoice", "support ticket", "release note", "product review", "meeting summary", "bug report")
    return [f"{topics[i % len(topics)]} {i}: customer asked about order {i * 7 % 100003}" for i in range(count)]


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
    env = {"OPENAI_MODELS": MODEL, "EMBEDDING_JOBS_QUEUE": "embedding-jobs",
           "EMBEDDING_JOBS_CONTAINER": "embedding-jobs", "EMBEDDING_JOBS_TABLE": "embeddingjobs"}
    sim_args = ["--tpm", str(args.tpm)] + (["--rpm", str(args.rpm)] if args.rpm else [])
    texts = make_texts(args.inputs)
    with Stack(ROOT, host, simulator=True, simulator_port=sim, simulator_args=sim_args, azurite=True,
               azurite_ports=(blob, queue, table), env=env) as stack, \
            httpx.Client(base_url=stack.host_url, timeout=120) as http:
        assert stack.simulator_url and stack.storage_connection_string
        started = time.perf_counter()
        # Owned by the keyless local caller, so the status polls below (no function key) may read it.
        job_id = submit_job_sync(texts, model=MODEL, dimensions=args.dimensions, owner="anonymous",
                                 connection_string=stack.storage_connection_string)
        submitted = time.perf_counter()
        status: dict[str, Any] = {}
        while time.perf_counter() - started < args.timeout:
            status = http.get(f"/api/v1/embeddings/jobs/{job_id}").json()
            if status.get("status") in ("succeeded", "failed"):
                break
            time.sleep(0.5)
        finished = time.perf_counter()
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
        "python": sys.version.split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--tpm", type=int, default=300_000, help="simulator tokens-per-minute limit")
    parser.add_argument("--rpm", type=int, default=0, help="simulator requests-per-minute limit (0: none)")
    parser.add_argument("--dimensions", type=int, default=64, help="vector size (results blob size scales with it)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
