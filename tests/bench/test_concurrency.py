"""Keeps the streams-per-worker measurement working (``python -m bench --concurrency-only``) and
checks the rule that turns its figures into the default ``perInstanceConcurrency``. No timing
assertions: the machine is shared, so only the shape and sanity of the figures are checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import concurrency

ROOT = Path(__file__).resolve().parents[2]


def _level(n: int, *, cpu: float = 10.0, rss: float = 100.0, added_p99: float = 5.0, relay: str = "ok",
           errors: int = 0, waiting: float = 0.0, client: float = 20.0) -> dict[str, Any]:
    return {"concurrency": n, "cpu_percent": cpu, "peak_rss_mib": rss, "added_first_event_ms": {"p99": added_p99},
            "relay": relay, "errors": errors, "waiting_for_cpu_percent": waiting, "client_core_cpu_percent": client}


def test_the_default_is_the_largest_level_that_fits() -> None:
    levels = [_level(16), _level(64, cpu=15), _level(128, cpu=24), _level(256, cpu=48)]
    chosen = concurrency.choose_default(levels)
    assert chosen["per_instance_concurrency"] == 128
    assert list(chosen["misfits"]) == ["256"] and "CPU 48" in chosen["misfits"]["256"][0]


def test_each_budget_can_rule_a_level_out() -> None:
    assert concurrency.fits(_level(64)) == []
    assert concurrency.fits(_level(64, rss=600))[0].startswith("RSS")
    assert concurrency.fits(_level(64, added_p99=80))[0].startswith("added first-event")
    assert concurrency.fits(_level(64, relay="buffers")) == ["relay buffers"]
    assert concurrency.fits(_level(64, errors=3)) == ["3 errors"]


def test_a_level_spoiled_by_the_machine_is_not_held_against_the_gateway() -> None:
    levels = [_level(16), _level(64), _level(256, added_p99=400, waiting=35.0), _level(512)]
    chosen = concurrency.choose_default(levels)
    assert chosen["per_instance_concurrency"] == 64
    assert chosen["misfits"] == {} and "waited for its core 35.0%" in chosen["unmeasured"]["256"][0]
    # The same misfit on a quiet machine counts.
    quiet = concurrency.choose_default([_level(16), _level(64), _level(256, added_p99=400), _level(512)])
    assert quiet["per_instance_concurrency"] == 64 and "256" in quiet["misfits"] and quiet["unmeasured"] == {}


def _run(cpu: float, waiting: float, p99: float) -> dict[str, Any]:
    row = {key: 1.0 for key in concurrency.MEDIAN_OF}
    row.update(cpu_percent=cpu, waiting_for_cpu_percent=waiting, errors=0, relay="ok", idle_rss_mib=80.0,
               peak_rss_mib=90.0, rss_per_stream_kib=40.0)
    for key in concurrency.MEDIAN_OF_NESTED:
        row[key] = {"p50": 1.0, "p99": p99}
    return row


def test_repeats_combine_into_medians_of_the_undisturbed_runs() -> None:
    row = concurrency.combine([_run(20, 1, 5), _run(90, 60, 900), _run(24, 2, 9), _run(22, 0, 7)])
    assert row["cpu_percent"] == 22 and row["added_first_event_ms"]["p99"] == 7
    assert row["runs"] == 4 and row["runs_used"] == 3
    alone = concurrency.combine([_run(50, 40, 300), _run(60, 30, 200)])
    assert alone["runs_used"] == 1 and alone["cpu_percent"] == 60
    assert concurrency.unmeasurable(alone)


def test_process_readings() -> None:
    assert (concurrency.rss_kib(os.getpid()) or 0) > 1024
    assert concurrency.run_queue_wait_s(os.getpid()) >= 0.0
    assert concurrency.rss_kib(2**22 + 7) is None


def test_concurrency_only_runs_and_writes_its_own_files(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--concurrency-only", "--smoke", "--no-pin",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "bench.json").exists()
    result = json.loads((tmp_path / "concurrency.json").read_text())
    (level,) = result["levels"]
    assert level["concurrency"] == concurrency.SMOKE_LEVELS[0] and level["errors"] == 0
    assert level["streams_per_s"] > 0 and level["cpu_percent"] > 0
    assert 0 < level["idle_rss_mib"] <= level["peak_rss_mib"]
    assert level["first_event_ms"]["p50"] >= concurrency.TTFT_MS
    assert "Streams per worker" in (tmp_path / "concurrency.md").read_text()
