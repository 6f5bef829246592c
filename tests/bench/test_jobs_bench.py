"""Keeps the embedding-jobs and batch figures of ``make bench`` honest: the README shows exactly
what the last run wrote, the tables compute what their headers say, and a partial run replaces
only its own figures. Nothing here runs a job (``python -m bench --jobs-only --smoke`` does)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench import jobs, jobs_report

ROOT = Path(__file__).resolve().parents[2]


def _meta(**extra: Any) -> dict[str, Any]:
    return {"command": "python -m bench --jobs-only", "mode": "full", "parts": list(jobs.PARTS), "started": "T0",
            "duration_s": 1200.0, "interactive_share": 0.2,
            "machine": {"cpu_model": "cpu", "cpus": 2, "python": "3", "loadavg_at_start": [0.5]}, **extra}


def _job(part: str, *, tpm: int = 120_000, inputs: int = 5600, elapsed: float = 180.0, **extra: Any) -> dict[str, Any]:
    tokens = inputs * 60
    return {"part": part, "inputs": inputs, "text_tokens": 60.0, "interactive_share": 0.2, "dimensions": 64,
            "tpm_limit": tpm, "tokens": tokens, "elapsed_s": elapsed, "submit_s": 0.3, "planning_s": 0.8,
            "tokens_per_s": round(tokens / elapsed, 1), "fraction_of_limit": round(tokens / elapsed / (tpm / 60), 3),
            "fraction_of_usable_limit": round(tokens / elapsed / (0.8 * tpm / 60), 3), "fraction_of_ideal": 0.9,
            "upstream_calls": 8, "upstream_calls_per_1000_inputs": 1.43, "throttled_429": 1, "upstream_5xx": 0,
            "host_peak_rss_mb": 150.0, "results_read_s": 0.1, **extra}


def test_the_readme_shows_exactly_what_the_last_jobs_run_wrote() -> None:
    stored = json.loads((ROOT / "bench" / "results" / "jobs.json").read_text())
    block = re.search(r"<!-- bench:jobs -->\n(.*?)<!-- /bench:jobs -->", (ROOT / "README.md").read_text(), re.DOTALL)
    assert block is not None, "README.md has no bench:jobs block"
    assert block.group(1) == jobs_report.markdown(stored)
    assert (ROOT / "bench" / "results" / "jobs.md").read_text() == block.group(1)


def test_throughput_rows_and_recovery_cost_against_the_same_cell() -> None:
    runs = {
        "matrix_120k_60": _job("matrix", elapsed=180.0),
        "recovery_outage": _job("recovery", elapsed=231.5, upstream_5xx=12,
                                fault={"kind": "outage", "at_s": 40.0, "length_s": 60.0, "lease_s": None}),
        "recovery_kill": _job("recovery", elapsed=250.0,
                              fault={"kind": "host killed", "at_s": 41.0, "length_s": 3.0, "lease_s": 60}),
        "matrix_300k_500": {"part": "matrix", "command": "x", "error": "exit 1: boom\njob did not succeed"},
    }
    text = jobs_report.markdown({"meta": _meta(), "runs": runs})
    # 336,000 tokens in 180 s at 120k TPM: 1866.7 tokens/s, 0.93 of 2000/s, 1.17 of the 1600/s a job may use.
    assert "| 120,000 | 60 | 5,600 | 336,000 | 180.0 | 0.8 | 1867 | **0.93** | 1.17 | 0.90 | 1.43 | 1 |" in text
    assert "| outage | 40.0 | 60.0 | - | 231.5 | 180.0 | 51.5 | 12 | 1 |" in text
    assert "| host killed | 41.0 | 3.0 | 60 | 250.0 | 180.0 | 70.0 | 0 | 1 |" in text
    assert "`matrix_300k_500` failed: job did not succeed" in text


def test_live_traffic_goal_compares_429_rates() -> None:
    live: dict[str, Any] = {
        "every_s": 1.0,
        "without_job": {"requests": 60, "throttled_429": 0, "other_errors": 0, "p50_ms": 40.0, "p99_ms": 80.0},
        "beside_job": {"requests": 180, "throttled_429": 2, "other_errors": 0, "p50_ms": 41.0, "p99_ms": 95.0}}
    text = jobs_report.markdown({"meta": _meta(), "runs": {"live_traffic": _job("live", live_traffic=live)}})
    assert "| beside the job | 180 | 2 | 0 | 41.0 | 95.0 |" in text
    assert "**not met**" in text
    live["beside_job"]["throttled_429"] = 0
    assert "**met**" in jobs_report.markdown({"meta": _meta(), "runs": {"live_traffic": _job("live",
                                                                                             live_traffic=live)}})


def test_a_partial_run_replaces_only_its_runs_and_says_so() -> None:
    stored = {"meta": _meta(), "runs": {"matrix_120k_60": _job("matrix"), "million": _job("million")}}
    partial = {"meta": _meta(command="python -m bench --jobs-only --jobs-parts million", parts=["million"],
                             started="T1"),
               "runs": {"million": _job("million", elapsed=600.0)}}
    merged = jobs.merge(stored, partial)
    assert merged["runs"]["matrix_120k_60"] == stored["runs"]["matrix_120k_60"]
    assert merged["runs"]["million"]["elapsed_s"] == 600.0
    assert merged["meta"]["started"] == "T0"
    assert "Updated later by `python -m bench --jobs-only --jobs-parts million` (T1" in jobs_report.markdown(merged)


def test_cells_hold_minutes_of_the_usable_limit() -> None:
    runs = {run.name: run for run in jobs.plan(jobs.PARTS)}
    for name, tpm, text_tokens in (("matrix_300k_60", 300_000, 60), ("matrix_120k_500", 120_000, 500)):
        inputs = int(runs[name].args[runs[name].args.index("--inputs") + 1])
        # Alone on the deployment a job may use all but the idle headroom (half the reserve): 0.9 of the limit.
        assert inputs * text_tokens == round(jobs.MINUTES_OF_TOKENS * tpm * 0.9)
    assert "--kill-host" in runs["recovery_kill"].args and "--outage" in runs["recovery_outage"].args


def test_a_batch_beside_live_traffic_reports_its_share_of_what_was_left() -> None:
    live = {"every_s": 1.0, "live_tokens_per_s": 105.0,
            "without_job": {"requests": 60, "throttled_429": 0, "other_errors": 0, "p50_ms": 40.0, "p99_ms": 80.0},
            "beside_job": {"requests": 200, "throttled_429": 0, "other_errors": 0, "p50_ms": 42.0, "p99_ms": 90.0}}
    run = {"part": "batch", "lines": 5600, "tpm_limit": 120_000, "tokens": 336_000, "upload_s": 0.4,
           "elapsed_s": 200.0, "tokens_per_s": 1680.0, "fraction_of_limit": 0.84, "fraction_of_usable_limit": 1.05,
           "upstream_calls": 268, "throttled_429": 0, "host_peak_rss_mb": 150.0,
           "interactive_share": 0.2, "live_traffic": live, "fraction_of_capacity_left": 0.79}
    text = jobs_report.markdown({"meta": _meta(), "runs": {"batch_live_traffic": run}})
    # 268 calls seen by the simulator, 260 of them the interactive ones: 8 for 5,600 lines.
    assert "| 5,600 | 120,000 | 336,000 | 0.4 | 200.0 | 1680 | 0.84 | 1.05 | 1.43 | 0 | 150 |" in text
    assert "| beside the batch | 200 | 0 | 0 | 42.0 | 90.0 |" in text
    assert "(105 tokens/s of interactive traffic): 0.79 (goal ≥ 0.8: **not met**)" in text
