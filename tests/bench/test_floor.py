"""The floor target of ``make bench``: a real relay process in front of a real simulator, the ratio
figures built from its results, and the copy of the bench's Markdown into the README. No timing
assertions (the machine is shared): shapes, counts and the arithmetic of the ratios only."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import readme, report, scenarios
from bench.servers import ROOT, Target, wait_http_ok
from devhost.ports import LOCALHOST, free_port
from simulator.harness import SimulatorProcess


@pytest.fixture(scope="module")
def floor() -> Iterator[tuple[SimulatorProcess, Target]]:
    with SimulatorProcess.start("--ttft-ms", "5", "--token-delay-ms", "2") as sim:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.floor", "--port", str(port), "--upstream", sim.api_url, "--api-key", "k"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            assert wait_http_ok(f"http://{LOCALHOST}:{port}/health", timeout=30.0), "the floor did not start"
            yield sim, Target("floor", f"http://{LOCALHOST}:{port}/openai/v1/chat/completions", [], process.pid)
        finally:
            process.terminate()
            process.wait(10)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_floor_relays_like_the_simulator(floor: tuple[SimulatorProcess, Target], stream: bool) -> None:
    sim, target = floor
    direct = Target("direct", f"{sim.api_url}/chat/completions", ["api-key: k"], None)
    result = scenarios.run_loadgen(target, body=scenarios.request_body(stream, 8), concurrency=4, warmup=0.2,
                                   duration=1.0, watch={"proxy": target.pid or 0}, cpu=None, pair=direct)
    paired = result.pop("pair")
    for run in (result, paired):
        assert run["errors"] == 0 and run["statuses"] == {"200": run["completed"]} and run["completed"] > 0
    assert result["cpu_s"]["proxy"] > 0  # the relay did the work, in its own process
    if stream:
        # every event the simulator sends arrives through the floor: role + 8 content + finish + [DONE]
        assert result["events"] == 11 * result["completed"]
        assert result["first_event_ms"]["p50"] <= result["latency_ms"]["p50"]
    else:
        assert result["first_event_ms"] == {"count": 0}


def _level(gateway: float, floor: float, litellm: float | None = None) -> dict[str, Any]:
    def proxy(added: float) -> dict[str, Any]:
        return {"added_latency_ms": {"p50": added, "p95": added, "p99": 2 * added},
                "added_first_event_ms": {"p50": added, "p99": added}, "self_reported_overhead_ms": {"count": 0},
                "rps": 10.0, "cpu_s_per_1000": {"proxy": added / 10}}

    direct = {"latency_ms": {"p50": 100.0, "p99": 110.0}, "rps": 10.0}
    level = {"gateway": proxy(gateway), "direct@gateway": direct, "floor": proxy(floor), "direct@floor": direct}
    if litellm is not None:
        level.update({"litellm": proxy(litellm), "direct@litellm": direct})
    return level


def _load(levels: dict[str, tuple[float, float]]) -> dict[str, Any]:
    plan = {"ttft_ms": 100.0, "token_delay_ms": 10.0, "max_tokens": 32, "repeats": 3}
    paced = {mode: {c: _level(*pair) for c, pair in levels.items()} for mode in ("json", "stream")}
    return {"plan": plan, "paced": paced, "saturation": {}}


def test_ratios_divide_the_gateways_added_latency_by_the_floors() -> None:
    load = _load({"1": (3.0, 2.0), "64": (6.0, 1.5)})
    ratios = report.ratios(load)["floor"]
    assert ratios["json"]["1"] == {"p50": 1.5, "p99": 1.5}
    assert ratios["stream"]["64"] == {"p50": 4.0, "p99": 4.0, "first_event_p50": 4.0}
    line, cpu_line = report.floor_lines(load)
    assert "c=1 1.50x (1.50x)" in line and "c=64 4.00x (4.00x)" in line
    assert "json c=1 0.30 vs 0.20 ms (1.50x)" in cpu_line and "stream c=64 0.60 vs 0.15 ms (4.00x)" in cpu_line
    assert "**not met** (json c=64 4.00x, stream c=64 4.00x)" in line
    assert "**met**" in report.floor_lines(_load({"1": (3.0, 2.0), "64": (1.5, 1.5)}))[0]
    assert "not judged" in report.floor_lines(_load({"1": (3.0, 2.0), "16": (1.0, 1.0)}))[0]
    # a floor that added nothing (noise) gives no ratio, rather than a huge one, and is never "met"
    assert report.ratios(_load({"1": (3.0, 0.0)}))["floor"]["json"]["1"]["p50"] is None
    noisy = report.floor_lines(_load({"1": (3.0, 0.0), "64": (1.0, 1.0)}))[0]
    assert "**met**" not in noisy and "not judged at json c=1, stream c=1" in noisy


def test_overhead_table_shows_the_floor_next_to_litellm() -> None:
    load = _load({"1": (3.0, 2.0)})
    load["paced"]["json"]["1"] = _level(3.0, 2.0, litellm=12.0)
    header, _, row = report.overhead_table(load, "json", ["gateway", "floor", "litellm"])[2:5]
    assert "floor added p50 / p95 / p99" in header and "gateway ÷ floor / ÷ litellm (p50)" in header
    assert "| 1.50x / 0.25x |" in row


def test_readme_blocks_are_replaced_and_nothing_else(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text("# Title\n\n<!-- bench:floor -->\nold table\n<!-- /bench:floor -->\n\nafter\n")
    assert readme.update("floor", "### New\n\n| a |\n", page)
    assert page.read_text() == "# Title\n\n<!-- bench:floor -->\n### New\n\n| a |\n<!-- /bench:floor -->\n\nafter\n"
    assert not readme.update("table", "x", page)
    assert "x" not in page.read_text()


def test_a_partial_run_replaces_only_its_items_and_says_so() -> None:
    from bench import cli

    meta = {"command": "python -m bench", "mode": "full", "started": "T0", "duration_s": 900.0, "pinning": "-",
            "machine": {"cpu_model": "cpu", "cpus": 2, "memory_gib": 1, "kernel": "k", "python": "3",
                        "loadavg_at_start": [0.5]}}
    stored = {"meta": meta, "load": {"old": 1}, "coldstart": {"old": 2}}
    partial = {"meta": {**meta, "started": "T1", "machine": {**meta["machine"], "loadavg_at_start": [3.0]}},
               "coldstart": {"new": 3}}
    merged = cli.merge(stored, partial, ["coldstart"])
    assert merged["load"] == {"old": 1} and merged["coldstart"] == {"new": 3}
    assert merged["meta"]["started"] == "T0"
    assert merged["meta"]["updates"] == [{"command": "python -m bench --only coldstart", "started": "T1",
                                          "items": ["coldstart"], "loadavg_at_start": [3.0], "duration_s": 900.0}]
    assert "Updated later by `python -m bench --only coldstart` (T1, load average at start 3.0)" in \
        report.markdown({"meta": merged["meta"]})
