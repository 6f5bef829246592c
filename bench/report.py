"""The Markdown tables for the README, built from the results JSON (so they can be rebuilt later
with ``python -m bench --report-only``)."""

from __future__ import annotations

from typing import Any

PROXIES = ("gateway", "floor", "litellm")
# Issue #11: the gateway's added latency within 1.5x the floor's, at these levels, streaming and not.
FLOOR_GOAL_RATIO = 1.5
FLOOR_GOAL_LEVELS = ("1", "64")


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _rng(summary: dict[str, Any], key: str, digits: int = 1) -> str:
    """A median with its spread across repetitions, e.g. ``171.3 (170.9-172.0)``."""
    value = summary.get(key)
    spread = summary.get(f"{key}_range")
    if value is None:
        return "-"
    if spread and spread[0] != spread[1]:
        return f"{value:.{digits}f} ({spread[0]:.{digits}f}-{spread[1]:.{digits}f})"
    return f"{value:.{digits}f}"


def machine_line(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    return (f"Machine: {m['cpu_model']}, {m['cpus']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, "
            f"Python {m['python']}; load average at start {m['loadavg_at_start'][0]} (shared machine). "
            f"CPU layout: {meta['pinning']}. Command: `{meta['command']}` ({meta['mode']}, "
            f"{meta['duration_s']:.0f} s).")


def overhead_table(load: dict[str, Any], mode: str, proxies: list[str]) -> list[str]:
    plan = load["plan"]
    title = "streaming" if mode == "stream" else "non-streaming"
    lines = [
        f"**Added latency, {title}** (upstream paced: first token {plan['ttft_ms']:g} ms, then "
        f"{plan['token_delay_ms']:g} ms per token, {plan['max_tokens']} tokens; medians of "
        f"{plan['repeats']} runs, ms; each proxy run is paired with as many direct connections at the same "
        "time; added = percentile through the proxy minus the same percentile of its direct pair; "
        "self-reported = `x-gateway-overhead-ms` / LiteLLM's `x-litellm-overhead-duration-ms`)",
        "",
    ]
    head = "| concurrency | direct p50 / p99 (paired with gateway) |"
    rule = "|---:|---:|"
    for proxy in proxies:
        head += f" {proxy} added p50 / p95 / p99 |"
        rule += "---:|"
    peers = [peer for peer in ("floor", "litellm") if peer in proxies]
    if peers:
        head += f" gateway ÷ {' / ÷ '.join(peers)} (p50) |"
        rule += "---:|"
    head += " self-reported overhead p50 / p99 | req/s gateway (direct) |"
    rule += "---:|---:|"
    lines += [head, rule]
    table_ratios = ratios(load)
    for concurrency, level in load["paced"][mode].items():
        direct = level["direct@gateway"]["latency_ms"]
        row = f"| {concurrency} | {_f(direct.get('p50'), 1)} / {_f(direct.get('p99'), 1)} |"
        for proxy in proxies:
            added = level.get(proxy, {}).get("added_latency_ms")
            row += (" - |" if added is None else
                    f" {_f(added['p50'])} / {_f(added['p95'])} / {_f(added['p99'])} |")
        if peers:
            cells = [table_ratios.get(peer, {}).get(mode, {}).get(concurrency, {}).get("p50") for peer in peers]
            row += " " + " / ".join("-" if cell is None else f"{cell:.2f}x" for cell in cells) + " |"
        reported = []
        for proxy in proxies:
            overhead = level.get(proxy, {}).get("self_reported_overhead_ms", {})
            if overhead.get("count"):
                reported.append(f"{proxy} {_f(overhead.get('p50'), 3)} / {_f(overhead.get('p99'), 3)}")
        row += f" {'; '.join(reported) or '-'} |"
        row += f" {_f(level.get('gateway', {}).get('rps'), 0)} ({_f(level['direct@gateway'].get('rps'), 0)}) |"
        lines.append(row)
    return lines


def _verdict(verdict: dict[str, Any]) -> str:
    state = verdict.get("state", "ok" if verdict["ok"] else "buffers")
    if state == "ok":
        return "ok"
    return f"{'saturated' if state == 'saturated' else 'FAIL'}: {verdict['why']}"


def streaming_table(load: dict[str, Any], proxies: list[str]) -> list[str]:
    lines = [
        "**Streaming: time to first event and gaps between events** (ms, medians of runs; `direct@X` ran at "
        "the same time as X; a relay that buffers shows collapsed gaps or a late first event and is marked FAIL; "
        "a proxy out of CPU batches events too and is marked saturated)",
        "",
        "| concurrency | target | first event p50 / p99 | added first event p50 / p99 | gap p50 / p99 | relay |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for concurrency, level in load["paced"]["stream"].items():
        for target in [name for proxy in proxies for name in (f"direct@{proxy}", proxy)]:
            agg = level.get(target)
            if agg is None:
                continue
            first, gap = agg["first_event_ms"], agg["gap_ms"]
            added = agg.get("added_first_event_ms")
            verdict = agg.get("relay")
            lines.append(
                f"| {concurrency} | {target} | {_f(first.get('p50'))} / {_f(first.get('p99'))} | "
                + ("- |" if added is None else f"{_f(added['p50'])} / {_f(added['p99'])} |")
                + f" {_f(gap.get('p50'))} / {_f(gap.get('p99'))} | "
                + ("-" if verdict is None else _verdict(verdict)) + " |"
            )
    return lines


def saturation_table(load: dict[str, Any]) -> list[str]:
    plan = load["plan"]
    lines = [
        f"**Saturation** (no upstream delay, {plan['saturation_concurrency']} connections, closed loop; "
        "req/s median and range of runs; CPU seconds per 1,000 requests)",
        "",
        "| mode | target | req/s | proxy CPU s/1k | simulator CPU s/1k | load generator CPU s/1k |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for mode, targets in load["saturation"].items():
        for name, agg in targets.items():
            cpu = agg["cpu_s_per_1000"]
            rps = agg["rps"]
            low, high = agg["rps_range"]
            lines.append(f"| {mode} | {name} | {rps:.0f} ({low:.0f}-{high:.0f}) | {_f(cpu.get('proxy'))} | "
                         f"{_f(cpu.get('simulator'))} | {_f(cpu.get('loadgen'))} |")
    return lines


def ratios(load: dict[str, Any]) -> dict[str, Any]:
    """Gateway added latency ÷ each peer's (floor, LiteLLM), per mode and concurrency.

    ``{peer: {mode: {concurrency: {"p50": x, "p99": y}}}}``, plus ``first_event_p50`` for streams;
    ``None`` where the peer was not measured or added nothing (a ratio to ~0 means nothing).
    """
    out: dict[str, Any] = {}
    for peer in ("floor", "litellm"):
        for mode, levels in load["paced"].items():
            for concurrency, level in levels.items():
                if peer not in level or "gateway" not in level:
                    continue
                keys = [("p50", "added_latency_ms", "p50"), ("p99", "added_latency_ms", "p99")]
                if mode == "stream":
                    keys.append(("first_event_p50", "added_first_event_ms", "p50"))
                cell: dict[str, float | None] = {}
                for name, figure, stat in keys:
                    ours = level["gateway"].get(figure, {}).get(stat)
                    theirs = level[peer].get(figure, {}).get(stat)
                    cell[name] = round(ours / theirs, 2) if ours is not None and theirs and theirs > 0 else None
                out.setdefault(peer, {}).setdefault(mode, {})[concurrency] = cell
    return out


def floor_lines(load: dict[str, Any]) -> list[str]:
    """The gateway against the floor, level by level, and the issue's goal judged.

    A level where the floor added nothing measurable (p50 at or below 0: noise on a busy machine)
    has no ratio and is reported as not judged, never as met.
    """
    by_mode = ratios(load).get("floor")
    if not by_mode:
        return []
    parts = []
    for mode, label, key in (("json", "non-streaming", "p50"), ("stream", "streaming", "p50"),
                             ("stream", "streaming, first event", "first_event_p50")):
        cells = [f"c={concurrency} {_ratio(cell.get(key))}" + (f" ({_ratio(cell.get('p99'))})" if key == "p50" else "")
                 for concurrency, cell in by_mode.get(mode, {}).items()]
        if cells:
            parts.append(f"{label}: " + ", ".join(cells))
    judged = [(mode, level, by_mode.get(mode, {}).get(level, {}).get("p50"))
              for mode in ("json", "stream") for level in FLOOR_GOAL_LEVELS]
    if any(level not in by_mode.get(mode, {}) for mode, level, _ in judged):
        verdict = "not judged (needs concurrency 1 and 64)"
    else:
        missed = [f"{mode} c={level} {_ratio(value)}" for mode, level, value in judged
                  if value is not None and value > FLOOR_GOAL_RATIO]
        noise = [f"{mode} c={level}" for mode, level, value in judged if value is None]
        verdict = ("**met**" if not missed and not noise else
                   f"**not met** ({', '.join(missed)})" if missed else "not judged")
        if noise:
            verdict += f"; not judged at {', '.join(noise)} (the floor's added p50 was within noise)"
    lines = [f"Gateway added ÷ floor added, p50 (p99): {'; '.join(parts)}. Goal (within "
             f"{FLOOR_GOAL_RATIO:g}x the floor at concurrency {' and '.join(FLOOR_GOAL_LEVELS)}, streaming and not, "
             f"p50): {verdict}."]
    cpu = []
    for mode, levels in load["paced"].items():
        for concurrency, level in levels.items():
            ours = level.get("gateway", {}).get("cpu_s_per_1000", {}).get("proxy")
            theirs = level.get("floor", {}).get("cpu_s_per_1000", {}).get("proxy")
            if ours and theirs:
                cpu.append(f"{mode} c={concurrency} {ours:.2f} vs {theirs:.2f} ms ({ours / theirs:.2f}x)")
    if cpu:
        # Latency far above the CPU ratio means the gateway's requests wait (queues, hops), not compute.
        lines.append(f"CPU per request in the same runs, gateway vs floor: {', '.join(cpu)}.")
    return lines


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def target_lines(results: dict[str, Any]) -> list[str]:
    load = results.get("load")
    if not load:
        return []
    lines = []
    if "64" in load["paced"].get("stream", {}):
        gateway = load["paced"]["stream"]["64"].get("gateway", {})
        added = gateway.get("added_latency_ms", {})
        first = gateway.get("added_first_event_ms", {})
        p50, p99 = added.get("p50"), added.get("p99")
        met = p50 is not None and p99 is not None and p50 < 1 and p99 < 5
        lines.append(
            f"Target at 64 concurrent streams (added latency median < 1 ms, p99 < 5 ms): whole stream "
            f"p50 {_f(p50)} ms / p99 {_f(p99)} ms, first event p50 {_f(first.get('p50'))} ms / p99 "
            f"{_f(first.get('p99'))} ms: **{'met' if met else 'not met'}**.")
    lines += floor_lines(load)
    lines += litellm_ratio_lines(load)
    return lines


def litellm_ratio_lines(load: dict[str, Any]) -> list[str]:
    """Our added median latency and CPU per request as a ratio to LiteLLM's, level by level."""
    parts: list[str] = []
    for mode in ("json", "stream"):
        cells = []
        for concurrency, level in load["paced"][mode].items():
            ours = level.get("gateway", {}).get("added_latency_ms", {}).get("p50")
            theirs = level.get("litellm", {}).get("added_latency_ms", {}).get("p50")
            if ours is None or not theirs or theirs <= 0:
                continue
            busy = level["litellm"].get("rps", 0) < 0.9 * level.get("direct@litellm", {}).get("rps", 0)
            cells.append(f"c={concurrency} {ours / theirs:.2f}x{' (LiteLLM saturated)' if busy else ''}")
        if cells:
            parts.append(f"{'streaming' if mode == 'stream' else 'non-streaming'}: " + ", ".join(cells))
    cpu = []
    for mode, targets in load["saturation"].items():
        ours = targets.get("gateway", {}).get("cpu_s_per_1000", {}).get("proxy")
        theirs = targets.get("litellm", {}).get("cpu_s_per_1000", {}).get("proxy")
        if ours and theirs:
            cpu.append(f"{mode} {ours / theirs:.2f}x")
    if not parts:
        return []
    return [f"Our added median latency as a ratio to LiteLLM's: {'; '.join(parts)}. CPU per request at "
            f"saturation, ours / theirs: {', '.join(cpu) or '-'}."]


def coldstart_table(cold: dict[str, Any]) -> list[str]:
    lines = [
        f"**Cold start** (fresh processes, median of {cold['repeats']}, s; target < {cold['target_s']:g} s to first "
        "response)",
        "",
        "| what | seconds |",
        "|---|---:|",
        f"| `python -c pass` (interpreter alone) | {_f(cold['python_bare_s'], 3)} |",
        f"| `import function_app` (inside the process) | {_f(cold['import_function_app_s'], 3)} |",
        *([f"| `import function_app`, CPU time of the process | {_f(cold['import_function_app_cpu_s'], 3)} |"]
          if "import_function_app_cpu_s" in cold else []),
        f"| host spawn → first 200 `GET /api/health` | {_f(cold['first_health_200_s'], 3)} |",
        f"| host spawn → first 200 chat completion | {_f(cold['first_chat_200_s'], 3)} |",
        "",
        *([f"`import function_app` target < {cold['import_target_s']:g} s: "
           f"**{'met' if cold['import_function_app_s'] < cold['import_target_s'] else 'not met'}**.", ""]
          if "import_target_s" in cold else []),
        "Heaviest packages at import (self time, ms): "
        + ", ".join(f"{name} {ms:g}" for name, ms in list(cold["importtime"]["by_package_ms"].items())[:8]) + ".",
    ]
    return lines


def profile_table(prof: dict[str, Any]) -> list[str]:
    if not prof.get("available"):
        return [f"Profile: not taken ({prof.get('reason')})."]
    lines = [
        f"**Where the gateway's CPU goes** (py-spy, {prof['concurrency']} connections at saturation, share of "
        "samples by the package executing)",
        "",
        "| package | non-streaming % | streaming % |",
        "|---|---:|---:|",
    ]
    json_part, stream_part = prof.get("json", {}), prof.get("stream", {})
    names = list(json_part.get("self_by_category_pct", {}))
    names += [n for n in stream_part.get("self_by_category_pct", {}) if n not in names]
    for name in names:
        lines.append(f"| {name} | {_f(json_part.get('self_by_category_pct', {}).get(name), 1)} | "
                     f"{_f(stream_part.get('self_by_category_pct', {}).get(name), 1)} |")
    return lines


FLOOR_NOTE = ("Floor: `bench/floor.py`, a pass-through on the local host's server stack (uvicorn with uvloop and "
              "httptools, Starlette) relaying with one bare aiohttp session and no policy, pinned like the gateway: "
              "gateway ÷ floor isolates the gateway's own code and upstream client from the cost of any Python hop.")


def markdown(results: dict[str, Any], title: str = "Benchmark results") -> str:
    meta = results["meta"]
    out = [f"### {title}", "", machine_line(meta), ""]
    for update in meta.get("updates", []):
        out += [f"Updated later by `{update['command']}` ({update['started']}, load average at start "
                f"{update['loadavg_at_start'][0]}): the {', '.join(update['items'])} figures below come from "
                "that run.", ""]
    load = results.get("load")
    peer = results.get("peer", {})
    proxies = [p for p in PROXIES if load and p in next(iter(load["paced"]["json"].values()), {})]
    if load:
        out += [*overhead_table(load, "json", proxies), ""]
        out += [*overhead_table(load, "stream", proxies), ""]
        out += [*streaming_table(load, proxies), ""]
        if load.get("saturation"):
            out += [*saturation_table(load), ""]
        out += [*target_lines(results), ""]
        if "floor" in proxies:
            out += [FLOOR_NOTE, ""]
    if peer and not peer.get("available", False):
        out += [f"LiteLLM was not measured: {peer.get('reason')}", ""]
    elif peer:
        out += [f"Peer: LiteLLM proxy {peer.get('version')} (one worker, openai-compatible provider pointed at the "
                "same simulator, access log off), measured in the same run with the same load generator.", ""]
    check = results.get("loadgen_check")
    if check:
        out += [f"Load generator check: its CPU per request stayed below the proxy's in "
                f"{check['runs_below']}/{check['runs']} proxied runs (worst ratio {check['worst_ratio']:.2f})"
                + (f"; at saturation against the simulator it used {_f(check.get('raw_ms_per_request'), 3)} ms CPU "
                   f"per request, aiohttp {_f(check.get('aiohttp_ms_per_request'), 3)} ms"
                   if "raw_ms_per_request" in check else "") + ".", ""]
    if results.get("profile"):
        out += [*profile_table(results["profile"]), ""]
    if results.get("coldstart"):
        out += [*coldstart_table(results["coldstart"]), ""]
    return "\n".join(out).rstrip() + "\n"
