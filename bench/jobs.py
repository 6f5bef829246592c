"""The embedding-jobs and batch figures of ``make bench`` (issues #14 and #15), as one suite.

``python -m bench --jobs-only`` runs just this (``--jobs-parts matrix,recovery`` a subset); a full
``python -m bench`` runs it after the gateway items. Each run is its own process
(``bench/embedding_jobs.py`` or ``bench/batch.py``, each starting its own stack: Azurite, a
TPM-limited simulator, the host), so one run's memory, leftovers or crash never touch the next;
a failed run is recorded with its error, not raised, so the others' figures survive.

The suite writes ``jobs.json`` (every figure and the exact command of each run) and ``jobs.md``
(the Markdown ``bench/jobs_report.py`` builds, copied into the README's ``bench:jobs`` block).
A partial run (``--jobs-parts``) replaces only its own runs in the stored ``jobs.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import machine
from shared.jobs.pacer import left_free

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("matrix", "recovery", "live", "million", "batch")
# The app's default EMBEDDING_JOBS_INTERACTIVE_SHARE: the figures are for what is deployed.
INTERACTIVE_SHARE = 0.2
# Each throughput cell holds this many minutes of the usable limit's tokens: with the sliding window
# (a full first minute, then one minute's worth per minute) that is about three minutes of work.
MINUTES_OF_TOKENS = 3.5
# Recovery and live-traffic runs use this cell, and compare with its matrix run.
RECOVERY_TPM, RECOVERY_TEXT_TOKENS = 120_000, 60
OUTAGE_SECONDS = 60
# The local host's queue lease for the killed-host run (Azure's is 10 minutes and fixed; see the README).
KILL_LEASE_SECONDS = 60
MILLION_TPM = 100_000_000  # far above what one host can send: the 1M job measures the engine, not the quota
MILLION_DIMENSIONS = 16
# A quota-bound job hides a fault behind the waits it makes anyway (the window refills meanwhile), so
# recovery is also measured on a job the engine sets the pace of: there, the fault's whole cost shows.
FAST_RECOVERY_INPUTS = 300_000


@dataclass(frozen=True)
class Run:
    """One measured run: a name in ``jobs.json``, the module that measures it, and its arguments."""

    name: str
    part: str
    module: str
    args: tuple[str, ...]
    timeout: float

    def argv(self, output: Path) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args, "--output", str(output)]


def cell_inputs(tpm: int, text_tokens: int, share: float = INTERACTIVE_SHARE) -> int:
    """Inputs of ``text_tokens`` each that fill MINUTES_OF_TOKENS minutes of what a job may use alone."""
    return round(MINUTES_OF_TOKENS * tpm * (1.0 - left_free(share, live=False)) / text_tokens)


def _job(name: str, part: str, *, inputs: int, tpm: int, text_tokens: int = 0, timeout: float = 900,
         extra: Sequence[str] = ()) -> Run:
    args = ["--inputs", str(inputs), "--tpm", str(tpm), "--interactive-share", str(INTERACTIVE_SHARE),
            "--timeout", str(timeout)]
    if text_tokens:
        args += ["--text-tokens", str(text_tokens)]
    return Run(name, part, "bench.embedding_jobs", (*args, *extra), timeout)


def plan(parts: Sequence[str], *, smoke: bool = False) -> list[Run]:
    """The runs of the chosen parts, in order (smoke: one tiny job, to keep the pieces working)."""
    if smoke:
        return [_job("smoke", "matrix", inputs=2000, tpm=300_000, timeout=300)]
    runs: list[Run] = []
    if "matrix" in parts:
        for tpm in (300_000, 120_000):
            for text_tokens in (60, 500):
                runs.append(_job(f"matrix_{tpm // 1000}k_{text_tokens}", "matrix", tpm=tpm, text_tokens=text_tokens,
                                 inputs=cell_inputs(tpm, text_tokens)))
    base = {"inputs": cell_inputs(RECOVERY_TPM, RECOVERY_TEXT_TOKENS), "tpm": RECOVERY_TPM,
            "text_tokens": RECOVERY_TEXT_TOKENS}
    if "recovery" in parts:
        runs.append(_job("recovery_outage", "recovery", **base, extra=("--outage", str(OUTAGE_SECONDS))))
        runs.append(_job("recovery_kill", "recovery", **base, timeout=1500,
                         extra=("--kill-host", "--lease", str(KILL_LEASE_SECONDS))))
        fast = {"inputs": FAST_RECOVERY_INPUTS, "tpm": MILLION_TPM}
        small = ("--dimensions", str(MILLION_DIMENSIONS))
        runs.append(_job("recovery_fast_baseline", "recovery", **fast, extra=small))
        runs.append(_job("recovery_fast_outage", "recovery", **fast, extra=(*small, "--outage", str(OUTAGE_SECONDS))))
        runs.append(_job("recovery_fast_kill", "recovery", **fast, timeout=1500,
                         extra=(*small, "--kill-host", "--lease", str(KILL_LEASE_SECONDS))))
    if "live" in parts:
        runs.append(_job("live_traffic", "live", **base, extra=("--live-every", "1", "--live-baseline", "60")))
        # Live calls at ~19% of the limit starting with the job: above the idle headroom until the
        # job's next response shows them (the cost of not holding the whole reserve when idle).
        runs.append(_job("live_traffic_burst", "live", **base, extra=("--live-every", "0.25", "--live-baseline", "0")))
    if "million" in parts:
        runs.append(_job("million", "million", inputs=1_000_000, tpm=MILLION_TPM, timeout=1800,
                         extra=("--dimensions", str(MILLION_DIMENSIONS))))
    if "batch" in parts:
        runs += batch_runs()
    return runs


def batch_runs() -> list[Run]:
    """The Batch API runs (``bench/batch.py``), when that module is there."""
    if not (ROOT / "bench" / "batch.py").exists():
        return []
    import importlib

    runs: list[tuple[str, list[str], float]] = importlib.import_module("bench.batch").RUNS
    return [Run(name, "batch", "bench.batch", tuple(args), timeout) for name, args, timeout in runs]


def run_one(run: Run, log: Callable[[str], None]) -> dict[str, Any]:
    """One run in its own process; its JSON, or ``{"error": ...}`` with the tail of its output."""
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as folder:
        output = Path(folder) / f"{run.name}.json"
        argv = run.argv(output)
        command = "python -m " + " ".join([run.module, *run.args])
        log(f"jobs: {run.name}: {command}")
        started = time.perf_counter()
        try:
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=run.timeout + 300,
                                  check=False)
        except subprocess.TimeoutExpired:
            return {"command": command, "error": f"did not finish within {run.timeout + 300:.0f} s"}
        wall = round(time.perf_counter() - started, 1)
        if done.returncode != 0 or not output.exists():
            tail = (done.stderr or done.stdout)[-1500:]
            log(f"jobs: {run.name} failed (exit {done.returncode})")
            return {"command": command, "wall_s": wall, "error": f"exit {done.returncode}: {tail}"}
        result: dict[str, Any] = json.loads(output.read_text())
        result.update(command=command, wall_s=wall, loadavg_at_end=[round(x, 2) for x in os.getloadavg()])
        log(f"jobs: {run.name}: {result.get('elapsed_s')} s")
        return result


def run_suite(parts: Sequence[str], *, smoke: bool, log: Callable[[str], None], command: str) -> dict[str, Any]:
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown jobs part(s) {sorted(unknown)}; choose from {PARTS}")
    started = time.perf_counter()
    meta = {"command": command, "mode": "smoke" if smoke else "full", "parts": list(parts),
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine.describe(),
            "interactive_share": INTERACTIVE_SHARE}
    runs = {run.name: {"part": run.part, **run_one(run, log)} for run in plan(parts, smoke=smoke)}
    meta["duration_s"] = round(time.perf_counter() - started, 1)
    return {"meta": meta, "runs": runs}


def merge(previous: dict[str, Any], partial: dict[str, Any]) -> dict[str, Any]:
    """A partial run replaces its own runs in the stored results and is listed under ``meta.updates``."""
    meta = partial["meta"]
    update = {key: meta[key] for key in ("command", "started", "parts", "duration_s")}
    update["loadavg_at_start"] = meta["machine"]["loadavg_at_start"]
    return {"meta": {**previous["meta"], "updates": [*previous["meta"].get("updates", []), update]},
            "runs": {**previous.get("runs", {}), **partial["runs"]}}
