"""Where the gateway's CPU goes under load: a py-spy sampling profile of the host process while
the load generator saturates it, summarised by the package each sample was executing.

Sampling (not cProfile) because it does not slow the code under test by much and sees the real
process, uvicorn and all. py-spy is optional (requirements-bench.txt): without it this section
says so and the rest of the benchmark is unaffected.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.servers import CLIENT_CPU, Servers

# First match wins; matched against the file path of the innermost frame of each sample.
CATEGORIES = (
    ("openai SDK (request building, auth, response handling)", ("/openai/",)),
    ("httpx2 / httpcore2 / h11 / anyio (upstream HTTP client)", ("/httpx2/", "/httpcore2/", "/h11/", "/anyio/",
                                                                 "/sniffio/")),
    ("aiohttp", ("/aiohttp/", "/multidict/", "/yarl/")),
    ("uvicorn / starlette (HTTP server)", ("/uvicorn/", "/starlette/", "/httptools/")),
    ("logging", ("/logging/",)),
    ("pydantic (request validation)", ("/pydantic", "/pydantic_core/")),
    ("gateway code (shared/, blueprints/)", ("/shared/", "/blueprints/")),
    ("local host (devhost/)", ("/devhost/",)),
    ("asyncio / event loop", ("/asyncio/", "uvloop")),
)


def _py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def _category(frame: str) -> str:
    location = "/" + _short(frame)  # py-spy shortens paths to "package/module.py"
    for name, needles in CATEGORIES:
        if any(needle in location for needle in needles):
            return name
    return "other (stdlib, json, uuid, ...)"


def summarize_raw(path: Path, top: int = 25) -> dict[str, Any]:
    """Self time by category and the heaviest functions (inclusive), from py-spy's raw output."""
    by_category: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        by_category[_category(frames[-1])] += samples
        for frame in {f.split(" (", 1)[0] + " (" + _short(f) + ")" for f in frames}:
            inclusive[frame] += samples
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "self_by_category_pct": {name: round(100 * n / total, 1) for name, n in by_category.most_common()},
        "inclusive_top_pct": {name: round(100 * n / total, 1) for name, n in inclusive.most_common(top)},
    }


def _short(frame: str) -> str:
    """``func (pkg/mod.py:12)`` -> ``pkg/mod.py`` (py-spy already drops the site-packages prefix)."""
    location = frame.rsplit(" (", 1)[-1].rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in location:
            location = location.split(marker, 1)[1].split("/", 1)[-1] if marker.startswith("/") else \
                location.split(marker, 1)[1]
    return location


def run(servers: Servers, *, seconds: float, concurrency: int) -> dict[str, Any]:
    """Profile the gateway's host process during a saturating non-streaming and streaming load."""
    spy = _py_spy()
    if spy is None:
        return {"available": False, "reason": "py-spy is not installed (pip install -r requirements-bench.txt)"}
    host = servers.targets["gateway"].pid
    assert host is not None
    servers.configure_simulator(ttft_ms=0, token_delay_ms=0, reply_tokens=scenarios.FULL.max_tokens)
    out: dict[str, Any] = {"available": True, "seconds": seconds, "concurrency": concurrency}
    for mode in ("json", "stream"):
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as folder:
            raw = Path(folder) / "profile.txt"
            recorder = subprocess.Popen(
                [spy, "record", "--pid", str(host), "--duration", str(int(seconds)), "--rate", "200",
                 "--format", "raw", "--output", str(raw), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)  # let py-spy attach before the load starts
            result = scenarios.run_loadgen(servers.targets["gateway"],
                                           body=scenarios.request_body(mode == "stream", scenarios.FULL.max_tokens),
                                           concurrency=concurrency, warmup=0.2, duration=seconds - 1.0,
                                           watch={"proxy": host}, cpu=CLIENT_CPU if servers.pinned else None)
            try:
                _, err = recorder.communicate(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                _, err = recorder.communicate()
            if not raw.exists():
                out[mode] = {"error": f"py-spy wrote nothing: {err[-500:]}"}
                continue
            out[mode] = {"rps": result["rps"], "proxy_cpu_ms_per_request": result["cpu_s_per_1000"].get("proxy"),
                         **summarize_raw(raw)}
    return out
