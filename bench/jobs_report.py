"""The Markdown for the README's ``bench:jobs`` block, built from ``jobs.json`` alone (so
``python -m bench --jobs-report-only`` can rebuild it later) and written by ``python -m bench --jobs-only``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.report import _f
from shared.jobs.pacer import left_free

# A table's row for one run (name, figures), or None for no row; notes for under the table go in the list.
RunRow = Callable[[str, dict[str, Any], list[str]], str | None]

# Issue #14's goals.
THROUGHPUT_GOAL = 0.9
# Issue #15's goal: the batch reaches this share of the capacity left to it beside live traffic.
BATCH_SHARE_GOAL = 0.8


def _machine(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    return (f"Machine: {m['cpu_model']}, {m['cpus']} cores, Python {m['python']}; load average at start "
            f"{m['loadavg_at_start'][0]} (shared machine). Command: `{meta['command']}` ({meta['duration_s']:.0f} s, "
            f"{meta['started']}).")


def _failed(name: str, run: dict[str, Any]) -> str | None:
    if "error" not in run:
        return None
    return f"`{name}` failed: {run['error'].strip().splitlines()[-1][:200] if run['error'].strip() else '?'}"


def _row(*cells: object) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _header(*columns: str, left: int = 0) -> list[str]:
    """A table's column names and alignment row: the first ``left`` columns left-aligned, the rest right."""
    return [_row(*columns), "|" + "|".join("---" if n < left else "---:" for n in range(len(columns))) + "|"]


def _runs_table(runs: dict[str, Any], part: str, title: str, header: list[str], row: RunRow) -> list[str]:
    """The table of one part's runs: its title, header and a row per run; a failed run is a note under the
    table instead (among the notes ``row`` adds, in run order). Nothing when the part did not run."""
    chosen = {name: run for name, run in runs.items() if run.get("part") == part}
    if not chosen:
        return []
    lines = [title, "", *header]
    notes: list[str] = []
    for name, run in chosen.items():
        failed = _failed(name, run)
        if failed:
            notes.append(failed)
            continue
        line = row(name, run, notes)
        if line is not None:
            lines.append(line)
    return lines + (["", *notes] if notes else [])


def matrix_table(runs: dict[str, Any], share: float) -> list[str]:
    def row(name: str, run: dict[str, Any], notes: list[str]) -> str:
        return _row(f"{run['tpm_limit']:,}", _f(run["text_tokens"], 0), f"{run['inputs']:,}", f"{run['tokens']:,}",
                    _f(run["elapsed_s"], 1), _f(run.get("planning_s"), 1), _f(run["tokens_per_s"], 0),
                    f"**{_f(run['fraction_of_limit'], 2)}**", _f(run.get("fraction_of_usable_limit"), 2),
                    _f(run.get("fraction_of_ideal"), 2), _f(run["upstream_calls_per_1000_inputs"]),
                    run["throttled_429"])

    return _runs_table(
        runs, "matrix",
        f"**Throughput** (one job per row, alone on the deployment, submit to `succeeded`; "
        f"`EMBEDDING_JOBS_INTERACTIVE_SHARE` {share:g}, half of which jobs leave free while no live traffic is "
        f"seen, so they may use {1 - left_free(share, live=False):.0%} of the limit; "
        f"goal ≥ {THROUGHPUT_GOAL} of the limit over the whole job)",
        _header("TPM limit", "tokens / text", "inputs", "tokens", "elapsed s", "planning s", "tokens/s", "÷ limit",
                "÷ usable", "÷ best possible", "upstream calls / 1k inputs", "429s"),
        row)


def recovery_table(runs: dict[str, Any]) -> list[str]:
    def row(name: str, run: dict[str, Any], notes: list[str]) -> str | None:
        fault = run.get("fault")
        if fault is None:
            if "baseline" not in name:
                notes.append(f"`{name}`: the job ended ({_f(run['elapsed_s'], 1)} s) before 30% of its inputs "
                             "showed as embedded (counted per finished chunk): no fault was injected.")
            return None  # a baseline: shown as the "without fault" column of its faulted runs
        baseline = _baseline(runs, run)
        cost = None if baseline is None else run["elapsed_s"] - baseline["elapsed_s"]
        if fault.get("at_s", 0) >= run["elapsed_s"] - 1:
            notes.append(f"`{name}`: the fault came as the job ended (its progress is counted per finished chunk), "
                         "so it measures nothing; its cost column is the run-to-run spread of that cell.")
        return _row(f"{run['inputs']:,} x ~{_f(run['text_tokens'], 0)} tokens, {run['tpm_limit']:,} TPM",
                    fault.get("kind", "-"), _f(fault.get("at_s"), 1), _f(fault.get("length_s"), 1),
                    _f(fault.get("lease_s"), 0), _f(run["elapsed_s"], 1),
                    "-" if baseline is None else _f(baseline["elapsed_s"], 1), _f(cost, 1),
                    run.get("upstream_5xx", "-"), run["throttled_429"])

    return _runs_table(
        runs, "recovery",
        "**Recovery** (a job with one fault once 30% of its inputs are embedded, against the same job without "
        "it: the matching throughput row, or a job the engine sets the pace of, at a limit it never reaches; "
        "cost = elapsed - elapsed without the fault; every result checked: each input once, in order)",
        _header("job", "fault", "at s", "fault s", "queue lease s", "elapsed s", "without fault s", "cost s",
                "upstream 5xx", "429s", left=2),
        row)


def _baseline(runs: dict[str, Any], run: dict[str, Any]) -> dict[str, Any] | None:
    """The run of the same job (limit, inputs, text size) without a fault or live traffic beside it."""
    for other in runs.values():
        if (other.get("part") in ("matrix", "recovery") and "error" not in other and not other.get("fault")
                and other["tpm_limit"] == run.get("tpm_limit") and other["inputs"] == run.get("inputs")
                and other["text_tokens"] == run.get("text_tokens")):
            found: dict[str, Any] = other
            return found
    return None


def live_lines(runs: dict[str, Any], name: str = "live_traffic", what: str = "job") -> list[str]:
    run = runs.get(name)
    if not run:
        return []
    failed = _failed(name, run)
    if failed:
        return [failed]
    live = run["live_traffic"]
    alone, beside = live["without_job"], live["beside_job"]
    when = f"first {alone['requests']} alone, then" if alone["requests"] else f"starting together with the {what},"
    lines = [
        f"**Live traffic beside a {what}** (a synchronous `/embeddings` call of ~100 tokens every "
        f"{live['every_s']:g} s through the gateway, {when} beside the {what}; "
        f"TPM limit {run['tpm_limit']:,}, reserve {run['interactive_share']:g}; goal: no more 429s than without it)",
        "",
        *_header("interactive calls", "requests", "429s", "other errors", "p50 ms", "p99 ms", left=1),
    ]
    for label, part in ((f"without the {what}", alone), (f"beside the {what}", beside)):
        lines.append(_row(label, part["requests"], part["throttled_429"], part.get("other_errors", "-"),
                          _f(part.get("p50_ms"), 1), _f(part.get("p99_ms"), 1)))
    met = beside["requests"] and beside["throttled_429"] / beside["requests"] <= (
        alone["throttled_429"] / alone["requests"] if alone["requests"] else 0)
    size = f"{run['inputs']:,} inputs" if "inputs" in run else f"{run['lines']:,} lines"
    calls = _own_calls_per_1000(run, run.get("inputs") or run["lines"])
    lines += ["", f"The {what} meanwhile: {size} in {_f(run['elapsed_s'], 1)} s, {_f(calls)} upstream calls per 1,000, "
              f"{_f(run['fraction_of_limit'], 2)} of the limit, {_f(run.get('fraction_of_usable_limit'), 2)} of the "
              f"limit less the reserve; {run['throttled_429']} upstream 429s. Goal (429 rate beside ≤ alone): "
              f"**{'met' if met else 'not met'}**."]
    if "fraction_of_capacity_left" in run:
        left = run["fraction_of_capacity_left"]
        lines[-1] += (f" Share of the capacity the live calls left it ({_f(live.get('live_tokens_per_s'), 0)} "
                      f"tokens/s of interactive traffic): {_f(left, 2)} (goal ≥ {BATCH_SHARE_GOAL}: "
                      f"**{'met' if left >= BATCH_SHARE_GOAL else 'not met'}**).")
    return lines


def million_lines(runs: dict[str, Any]) -> list[str]:
    run = runs.get("million")
    if not run:
        return []
    failed = _failed("million", run)
    if failed:
        return [f"**The 1,000,000-input job**: {failed}"]
    return [
        f"**The 1,000,000-input job** (texts of ~{_f(run['text_tokens'], 0)} tokens, {run['dimensions']} dimensions, "
        f"simulator limit {run['tpm_limit']:,} TPM so the engine, not the quota, sets the pace)",
        "",
        *_header("inputs", "tokens", "submit s", "planning s", "elapsed s", "tokens/s", "upstream calls", "429s",
                 "host peak RSS MiB", "results read s"),
        _row(f"{run['inputs']:,}", f"{run['tokens']:,}", _f(run["submit_s"], 1), _f(run.get("planning_s"), 1),
             _f(run["elapsed_s"], 1), _f(run["tokens_per_s"], 0), run["upstream_calls"], run["throttled_429"],
             _f(run["host_peak_rss_mb"], 0), _f(run["results_read_s"], 1)),
    ]


def _own_calls_per_1000(run: dict[str, Any], size: int) -> float | None:
    """Upstream calls per 1,000 inputs or lines, the interactive calls beside it left out.

    The simulator counts every embeddings call; each interactive call that got its answer is one of
    them (with 429s or errors among them, how many calls they made is not known: no figure).
    """
    calls = int(run["upstream_calls"])
    live = run.get("live_traffic")
    if live:
        parts = (live["without_job"], live["beside_job"])
        if any(part["throttled_429"] or part.get("other_errors") for part in parts):
            return None
        calls -= sum(int(part["requests"]) for part in parts)
    return round(calls * 1000 / size, 2)


def batch_lines(runs: dict[str, Any]) -> list[str]:
    def row(name: str, run: dict[str, Any], notes: list[str]) -> str:
        return _row(f"{run['lines']:,}", f"{run['tpm_limit']:,}", f"{run['tokens']:,}", _f(run.get("upload_s"), 1),
                    _f(run["elapsed_s"], 1), _f(run["tokens_per_s"], 0), _f(run["fraction_of_limit"], 2),
                    _f(run.get("fraction_of_usable_limit"), 2), _f(_own_calls_per_1000(run, run["lines"])),
                    run["throttled_429"], _f(run.get("host_peak_rss_mb"), 0))

    lines = _runs_table(
        runs, "batch",
        "**Batch API** (`client.files.create` + `client.batches.create` with the official SDK, embeddings lines of "
        "one input each; reserve as above; tokens as the limit charges them, characters / 4, which the output "
        "file's tiktoken usage undercounts by about a quarter for these texts)",
        _header("lines", "TPM limit", "tokens", "upload s", "elapsed s", "tokens/s", "÷ limit", "÷ (limit - reserve)",
                "upstream calls / 1k lines", "429s", "host peak RSS MiB"),
        row)
    batches = {name: run for name, run in runs.items() if run.get("part") == "batch"}
    for name, run in batches.items():
        if run.get("live_traffic") and "error" not in run:
            lines += ["", *live_lines({name: run}, name, "batch")]
    return lines


def markdown(results: dict[str, Any]) -> str:
    meta, runs = results["meta"], results["runs"]
    share = meta.get("interactive_share", 0.2)
    out = ["#### Jobs and batches: the figures", "", _machine(meta), ""]
    for update in meta.get("updates", []):
        out += [f"Updated later by `{update['command']}` ({update['started']}, load average at start "
                f"{update['loadavg_at_start'][0]}): the {', '.join(update['parts'])} figures come from that run.", ""]
    for block in (matrix_table(runs, share), recovery_table(runs), live_lines(runs),
                  live_lines(runs, "live_traffic_burst"), million_lines(runs), batch_lines(runs)):
        if block:
            out += [*block, ""]
    return "\n".join(out).rstrip() + "\n"
