"""``python -m bench``: every benchmark in one command; ``--smoke`` for CI-sized runs.

Writes ``bench.json`` (everything, machine details included), ``latency.png`` and ``table.md``
(the Markdown for the README) into the output folder, and prints the table; ``--floor-only`` writes
``floor.json`` and ``floor.md`` instead. The embedding-jobs and batch figures (``bench/jobs.py``)
go to ``jobs.json`` and ``jobs.md``, with ``--jobs-only`` to run just them. Runs that write to
``bench/results`` also copy their Markdown into the README's marked blocks (``bench/readme.py``). Benchmarks measure,
they never fail a build: the exit code is non-zero only when a benchmark could not run at all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import coldstart, concurrency, jobs, jobs_report, machine, profile, readme, report, scenarios, servers
from bench.plot import plot

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ITEMS = ("load", "profile", "coldstart", "concurrency", "jobs")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI keeps the benchmarks working)")
    parser.add_argument("--only", default=",".join(ITEMS), help=f"comma-separated subset of {', '.join(ITEMS)}")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default bench/results, or a temporary folder with --smoke)")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM peer")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions of each load run")
    parser.add_argument("--jobs-only", action="store_true",
                        help="only the embedding-jobs and batch figures (writes jobs.json/.md, not bench.json)")
    parser.add_argument("--jobs-parts", default=",".join(jobs.PARTS),
                        help=f"with jobs: comma-separated subset of {', '.join(jobs.PARTS)}")
    parser.add_argument("--jobs-report-only", type=Path, default=None, metavar="JOBS_JSON",
                        help="rebuild jobs.md (and the README block) from an existing jobs.json")
    parser.add_argument("--concurrency-only", action="store_true",
                        help="only the streams-per-worker measurement (writes concurrency.json/.md, not bench.json)")
    parser.add_argument("--floor-only", action="store_true",
                        help="only the gateway against the floor at concurrency 1 and 64 (about 7 minutes; "
                             "writes floor.json/.md, not bench.json)")
    parser.add_argument("--report-only", type=Path, default=None, metavar="BENCH_JSON",
                        help="rebuild table.md and latency.png from an existing bench.json")
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _loadgen_check(load: dict[str, Any]) -> dict[str, Any]:
    """Was the generator ever the bottleneck? Its CPU per request against the proxy's, per run."""
    ratios: list[float] = []
    levels = [*load["paced"]["json"].values(), *load["paced"]["stream"].values(), *load["saturation"].values()]
    for level in levels:
        for name, agg in level.items():
            if name.startswith("direct"):
                continue
            cpu = agg["cpu_s_per_1000"]
            if cpu.get("proxy") and cpu.get("loadgen") is not None:
                ratios.append(cpu["loadgen"] / cpu["proxy"])
    return {"runs": len(ratios), "runs_below": sum(r < 1 for r in ratios),
            "worst_ratio": round(max(ratios), 3) if ratios else 0.0}


def _compare_clients(srv: servers.Servers, plan: scenarios.Plan) -> dict[str, Any]:
    """The generator's own CPU per request, raw protocol vs aiohttp, against the simulator alone."""
    body = scenarios.request_body(False, plan.max_tokens)
    cpu = servers.CLIENT_CPU if srv.pinned else None
    out: dict[str, Any] = {}
    for client in ("raw", "aiohttp"):
        result = scenarios.run_loadgen(srv.targets["direct"], body=body, concurrency=plan.saturation_concurrency,
                                       warmup=plan.warmup_s, duration=plan.saturation_s, watch={}, cpu=cpu,
                                       client=client)
        out[f"{client}_ms_per_request"] = result["cpu_s_per_1000"]["loadgen"]
        out[f"{client}_rps"] = result["rps"]
        _log(f"generator check {client}: {result['rps']:.0f} req/s, {result['cpu_s_per_1000']['loadgen']:.3f} ms "
             "CPU per request")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    items = {item.strip() for item in args.only.split(",") if item.strip()}
    unknown = items - set(ITEMS)
    if unknown:
        raise SystemExit(f"unknown item(s) {sorted(unknown)}; choose from {ITEMS}")
    floor_only = getattr(args, "floor_only", False)
    plan = scenarios.FLOOR if floor_only else scenarios.SMOKE if args.smoke else scenarios.FULL
    if args.repeats:
        plan = scenarios.Plan(**{**plan.__dict__, "repeats": args.repeats})
    started = time.perf_counter()
    command = ("python -m bench" + (" --smoke" if args.smoke else "")
               + (" --concurrency-only" if getattr(args, "concurrency_only", False) else "")
               + (" --floor-only" if floor_only else "")
               + (f" --repeats {args.repeats}" if args.repeats else ""))
    results: dict[str, Any] = {"meta": {
        "command": command,
        "mode": "floor" if floor_only else "smoke" if args.smoke else "full",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "pinning": "not pinned",
    }}
    with_litellm = "load" in items and not args.no_litellm and not args.smoke and not floor_only
    srv = servers.start(with_litellm=with_litellm, pin_cpus=not args.no_pin)
    try:
        if srv.pinned:
            results["meta"]["pinning"] = (f"proxy under test (gateway, floor or LiteLLM) on CPU {servers.PROXY_CPU}; "
                                          f"simulator and load generator on CPU {servers.CLIENT_CPU}")
        results["peer"] = srv.litellm_status or {"available": False,
                                                 "reason": "skipped (--smoke, --floor-only or --no-litellm)"}
        if "load" in items:
            _log(f"load: targets {sorted(srv.targets)}; plan {plan}")
            results["load"] = scenarios.run_matrix(srv, plan, log=_log, saturation=not floor_only)
            results["load"]["ratios"] = report.ratios(results["load"])
            results["loadgen_check"] = _loadgen_check(results["load"])
            if not floor_only:
                results["loadgen_check"].update(_compare_clients(srv, plan))
        if "profile" in items and not args.smoke:
            _log("profile (py-spy) of the gateway at saturation")
            results["profile"] = profile.run(srv, seconds=8.0, concurrency=plan.saturation_concurrency)
        if "concurrency" in items:
            _log("concurrency: streams per worker")
            results["concurrency"] = concurrency.run(
                srv, levels=concurrency.SMOKE_LEVELS if args.smoke else concurrency.LEVELS,
                repeats=1 if args.smoke else (args.repeats or 3), warmup=1.0 if args.smoke else 3.0,
                duration=2.0 if args.smoke else 8.0, log=_log)
        if "coldstart" in items:
            _log("cold start")
            results["coldstart"] = coldstart.run(srv.simulator_url, repeats=2 if args.smoke else 5)
    finally:
        srv.stop()
    if "jobs" in items:
        # Kept out of bench.json: jobs.json has its own meta, so a jobs-only run never rewrites the rest.
        results["jobs"] = run_jobs(args, command)
    results["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
    results["meta"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _jobs_parts(args: argparse.Namespace) -> list[str]:
    return [part.strip() for part in args.jobs_parts.split(",") if part.strip()]


def run_jobs(args: argparse.Namespace, command: str) -> dict[str, Any]:
    parts = _jobs_parts(args)
    if set(parts) != set(jobs.PARTS):
        command += f" --jobs-parts {','.join(parts)}"
    _log(f"embedding jobs and batches: {', '.join(parts)}")
    return jobs.run_suite(parts, smoke=args.smoke, log=_log, command=command)


def write_jobs(results: dict[str, Any], out: Path) -> str:
    """jobs.json and jobs.md, a partial run merged into what is stored; the README's bench:jobs block."""
    out.mkdir(parents=True, exist_ok=True)
    stored = out / "jobs.json"
    if set(results["meta"]["parts"]) != set(jobs.PARTS) and results["meta"]["mode"] != "smoke" and stored.exists():
        results = jobs.merge(json.loads(stored.read_text()), results)
    stored.write_text(json.dumps(results, indent=1) + "\n")
    table = jobs_report.markdown(results)
    (out / "jobs.md").write_text(table)
    _copy_to_readme(out, "jobs", table)
    return table


def _rejudge(results: dict[str, Any]) -> None:
    """Re-apply the current relay check to stored aggregates (the check may be newer than the data)."""
    for level in results.get("load", {}).get("paced", {}).get("stream", {}).values():
        for name, agg in level.items():
            direct = level.get(f"direct@{name}")
            if direct is not None and agg.get("relay") is not None:
                agg["relay"] = scenarios.relay_verdict(agg, direct)


def write_concurrency(results: dict[str, Any], out: Path) -> str:
    """concurrency.json and concurrency.md: kept apart so ``--concurrency-only`` leaves bench.json alone."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "concurrency.json").write_text(json.dumps({"meta": results["meta"], **results["concurrency"]}, indent=1)
                                          + "\n")
    table = "\n".join([report.machine_line(results["meta"]), "", *concurrency.markdown(results["concurrency"])]) + "\n"
    (out / "concurrency.md").write_text(table)
    return table


def write_floor(results: dict[str, Any], out: Path) -> str:
    """floor.json and floor.md: kept apart so ``--floor-only`` leaves bench.json alone."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "floor.json").write_text(json.dumps(results, indent=1) + "\n")
    table = report.markdown(results, title="Against the floor")
    (out / "floor.md").write_text(table)
    _copy_to_readme(out, "floor", table)
    return table


def _copy_to_readme(out: Path, block: str, table: str) -> None:
    if out.resolve() != RESULTS.resolve():
        return
    if readme.update(block, table):
        _log(f"README.md: block bench:{block} updated")
    else:
        _log(f"README.md has no bench:{block} block: not updated")


def write(results: dict[str, Any], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    if results.get("load"):
        results["load"]["ratios"] = report.ratios(results["load"])
    (out / "bench.json").write_text(json.dumps(results, indent=1) + "\n")
    table = report.markdown(results)
    if results.get("concurrency"):
        write_concurrency(results, out)
        table = table.rstrip("\n") + "\n\n" + "\n".join(concurrency.markdown(results["concurrency"])) + "\n"
    (out / "table.md").write_text(table)
    _copy_to_readme(out, "table", table)
    if results.get("load"):
        problem = plot(results, out / "latency.png")
        if problem:
            _log(f"no plot: {problem}")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.jobs_report_only:
        folder = args.out or args.jobs_report_only.parent
        table = jobs_report.markdown(json.loads(args.jobs_report_only.read_text()))
        (folder / "jobs.md").write_text(table)
        _copy_to_readme(folder, "jobs", table)
        print(table)
        return 0
    if args.report_only:
        results = json.loads(args.report_only.read_text())
        _rejudge(results)
        folder = args.out or args.report_only.parent
        print(write_floor(results, folder) if results["meta"].get("mode") == "floor" else write(results, folder))
        return 0
    out = args.out or (Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else RESULTS)
    if args.floor_only:
        args.only = "load"
        print(write_floor(run(args), out))
        _log(f"results in {out}")
        return 0
    if args.concurrency_only:
        args.only = "concurrency"
        print(write_concurrency(run(args), out))
        _log(f"results in {out}")
        return 0
    if args.jobs_only or set(_items(args)) == {"jobs"}:
        print(write_jobs(run_jobs(args, "python -m bench --jobs-only" + (" --smoke" if args.smoke else "")), out))
        _log(f"results in {out}")
        return 0
    results = run(args)
    jobs_results = results.pop("jobs", None)
    if jobs_results is not None:
        print(write_jobs(jobs_results, out))
    previous = out / "bench.json"
    if set(_items(args)) != set(ITEMS) and not args.smoke and previous.exists():
        results = merge(json.loads(previous.read_text()), results, [i for i in _items(args) if i != "jobs"])
    table = write(results, out)
    print(table)
    _log(f"results in {out}")
    return 0


# Where each item's figures live in bench.json.
RESULT_KEYS = {"load": ("load", "loadgen_check", "peer"), "profile": ("profile",), "coldstart": ("coldstart",),
               "concurrency": ("concurrency",), "jobs": ()}


def _items(args: argparse.Namespace) -> list[str]:
    return [item.strip() for item in args.only.split(",") if item.strip()]


def merge(previous: dict[str, Any], partial: dict[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """A partial run (``--only``) replaces its own items in the stored results and keeps the rest.

    The stored run's meta stays; the partial run is listed under ``meta.updates`` (command, start,
    items, machine load), and the table says which figures came from it.
    """
    merged = dict(previous)
    for item in items:
        for key in RESULT_KEYS[item]:
            if key in partial:
                merged[key] = partial[key]
    meta = partial["meta"]
    update = {"command": meta["command"] + f" --only {','.join(items)}", "started": meta["started"],
              "items": list(items), "loadavg_at_start": meta["machine"]["loadavg_at_start"],
              "duration_s": meta.get("duration_s")}
    merged["meta"] = {**previous["meta"], "updates": [*previous["meta"].get("updates", []), update]}
    return merged
