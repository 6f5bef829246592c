"""Benchmark: one OpenAI Batch API batch of embeddings lines through the local stack, with the official SDK.

    python -m bench.batch --lines 1000000 --tpm 3000000            # issue #15's 1M-line batch
    python -m bench.batch --lines 5600 --tpm 120000 --text-tokens 60 --live-every 1   # beside live traffic

Starts its own stack (Azurite, the simulator with ``--tpm``, the Functions host) on free ports with
``BATCH_MAX_LINES`` and ``FILES_MAX_BYTES`` raised to fit, writes a JSONL file of ``--lines`` lines
(one input each, ``/v1/embeddings``), uploads it with ``client.files.create(purpose="batch")``,
creates the batch with ``client.batches.create``, polls ``client.batches.retrieve`` to the end,
downloads the output file and checks every ``custom_id`` came back once, in input order, with a
vector of the asked size. Reports tokens/s over the batch (create to ``completed``) as a fraction
of the limit and of the limit less the interactive reserve, upstream calls per 1,000 lines, 429s,
the host's peak memory, and with ``--live-every`` interactive 429s and latency without and beside
the batch, and the batch's share of the capacity the live traffic left it.

``bench/jobs.py`` runs :data:`RUNS` as part of ``python -m bench --jobs-only``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.embedding_jobs import (
    FILLER,
    MODEL,
    add_shared_arguments,
    make_texts,
    peak_rss_mb,
    run_and_report,
    start_live_traffic,
    stream_jsonl,
)

ROOT = Path(__file__).resolve().parent.parent
# (name in jobs.json, arguments, timeout s): the 1M-line batch at a limit the quota sets the pace of,
# and a ~3.5-minute batch at 120k TPM beside interactive calls every second.
RUNS: list[tuple[str, list[str], float]] = [
    ("batch_million", ["--lines", "1000000", "--tpm", "3000000", "--dimensions", "16", "--timeout", "2400"], 2400),
    ("batch_live_traffic", ["--lines", "5600", "--tpm", "120000", "--text-tokens", "60", "--live-every", "1",
                            "--live-baseline", "60", "--timeout", "900"], 900),
]


def write_input(path: Path, lines: int, text_tokens: int, dimensions: int) -> tuple[int, int]:
    """The batch input file: one embeddings request per line; returns (its size in bytes, tokens charged).

    Tokens charged are counted as the simulator counts them against its TPM limit (``estimate_text``:
    characters / 4), the unit the limit is in. The output file's ``usage`` counts real tokens
    (tiktoken, as Azure reports them), about three quarters of that for these texts, so a rate in
    those tokens would understate how much of the limit the batch used.
    """
    from simulator.tokens import estimate_text

    charged = 0
    with path.open("w") as out:
        for index, text in enumerate(make_texts(lines, text_tokens)):
            charged += estimate_text(text)
            body = {"model": MODEL, "input": text, "dimensions": dimensions}
            out.write(json.dumps({"custom_id": f"r{index}", "method": "POST", "url": "/v1/embeddings",
                                  "body": body}, separators=(",", ":")) + "\n")
    return path.stat().st_size, charged


def check_output(http: httpx.Client, file_id: str, lines: int, dims: int) -> tuple[int, float]:
    """Stream the output file: every line once, in order, status 200, a vector of ``dims``; (tokens, seconds)."""
    started = time.perf_counter()
    expected, tokens = 0, 0
    for raw, line in stream_jsonl(http, f"/api/v1/files/{file_id}/content"):
        body = line["response"]["body"] if line.get("response") else None
        if (line["custom_id"] != f"r{expected}" or line["response"]["status_code"] != 200 or body is None
                or len(body["data"][0]["embedding"]) != dims):
            raise SystemExit(f"bad output line {expected}: {raw[:300]}")
        tokens += int(body["usage"]["prompt_tokens"])
        expected += 1
    if expected != lines:
        raise SystemExit(f"expected {lines} output lines, got {expected}")
    return tokens, time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    from openai import OpenAI

    from devhost.ports import free_ports
    from devhost.stack import Stack

    host, sim, blob, queue, table = free_ports(5)
    folder = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    source = folder / "input.jsonl"
    size, charged = write_input(source, args.lines, args.text_tokens, args.dimensions)
    env = {"OPENAI_MODELS": MODEL, "EMBEDDING_JOBS_QUEUE": "embedding-jobs",
           "EMBEDDING_JOBS_CONTAINER": "embedding-jobs", "EMBEDDING_JOBS_TABLE": "embeddingjobs",
           "EMBEDDING_JOBS_INTERACTIVE_SHARE": str(args.interactive_share),
           "BATCH_MAX_LINES": str(max(args.lines, 100_000)), "FILES_MAX_BYTES": str(max(size + 1024, 100 << 20))}
    with Stack(ROOT, host, simulator=True, simulator_port=sim, simulator_args=["--tpm", str(args.tpm)],
               azurite=True, azurite_ports=(blob, queue, table), env=env) as stack, \
            httpx.Client(base_url=stack.host_url, timeout=600) as http:
        assert stack.simulator_url
        client = OpenAI(base_url=f"{stack.host_url}/api/v1", api_key="unused-locally", timeout=1800, max_retries=0)
        live = start_live_traffic(stack.host_url, args)
        upload_started = time.perf_counter()
        with source.open("rb") as handle:
            uploaded = client.files.create(file=handle, purpose="batch")
        started = time.perf_counter()
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
        if live is not None:
            live.start()
        in_progress_at = None
        while time.perf_counter() - started < args.timeout:
            batch = client.batches.retrieve(batch.id)
            if batch.status == "in_progress" and in_progress_at is None:
                in_progress_at = time.perf_counter()
            if batch.status in ("completed", "failed", "expired", "cancelled"):
                break
            time.sleep(0.5)
        finished = time.perf_counter()
        if live is not None:
            live.finish()
        if batch.status != "completed" or not batch.output_file_id:
            raise SystemExit(f"batch did not complete: {batch.model_dump_json()[:2000]}\nhost log: {stack.host_log}")
        stats = httpx.get(f"{stack.simulator_url}/_sim/stats", params={"limit": 0}).json()
        rss = peak_rss_mb(stack.pids().get("host", []))
        tokens, read_seconds = check_output(http, batch.output_file_id, args.lines, args.dimensions)
    source.unlink()
    folder.rmdir()

    elapsed = finished - started
    usable = args.tpm * (1.0 - args.interactive_share) / 60.0
    achieved = charged / elapsed
    calls = int(stats["counts"].get("embeddings", 0))
    report: dict[str, Any] = {
        "lines": args.lines, "text_tokens": round(charged / args.lines, 1), "dimensions": args.dimensions,
        "interactive_share": args.interactive_share, "tpm_limit": args.tpm, "tokens": charged,
        "usage_tokens": tokens,
        "input_file_bytes": size, "upload_s": round(started - upload_started, 2),
        "validating_s": None if in_progress_at is None else round(in_progress_at - started, 2),
        "elapsed_s": round(elapsed, 2), "tokens_per_s": round(achieved, 1),
        "fraction_of_limit": round(achieved / (args.tpm / 60.0), 3),
        "fraction_of_usable_limit": round(achieved / usable, 3),
        "upstream_calls": calls, "upstream_calls_per_1000_lines": round(calls * 1000 / args.lines, 2),
        # Interactive calls go to the same simulator: they are not the batch's.
        "throttled_429": int(stats["statuses"].get("429", 0)),
        "host_peak_rss_mb": None if rss is None else round(rss, 1), "output_read_s": round(read_seconds, 2),
        "python": sys.version.split()[0],
    }
    if live is not None:
        figures = live.figures()
        # What the live calls used of the limit (their prompt is the same text every time).
        from shared import tokens as token_count

        live_rate = token_count.estimate(FILLER * 2) * figures["beside_job"]["requests"] / elapsed
        left = args.tpm / 60.0 - live_rate
        report["live_traffic"] = {**figures, "live_tokens_per_s": round(live_rate, 1)}
        report["fraction_of_capacity_left"] = round(achieved / left, 3)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--tpm", type=int, default=3_000_000, help="simulator tokens-per-minute limit")
    parser.add_argument("--dimensions", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=2400)
    add_shared_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_and_report(run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
