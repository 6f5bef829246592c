"""The jobs panel as an OpenAI Batch API client, in headless Chromium against the local host (issue #15).

The page uploads a JSONL file (``POST /v1/files``, multipart), creates a batch, polls it showing
status and ``request_counts``, and downloads the output and error files with the function key
header (a Blob URL). ``batch_helpers.test.mjs`` checks the pure helpers under node.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.browser.conftest import ROOT, Drive
from tests.e2e.conftest import Sim

HELPERS = Path(__file__).with_name("batch_helpers.test.mjs")
EMBED = "text-embedding-3-small"


def test_batch_helpers(node: str) -> None:
    done = subprocess.run([node, "--test", str(HELPERS)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-3000:]}"


def test_texts_become_a_batch_whose_output_downloads_in_order(drive: Drive, sim: Sim, page_url: str) -> None:
    texts = [f"browser batch text {i}" for i in range(40)]
    seen = drive("batch", url=page_url, lines=texts)
    assert seen["pageErrors"] == []
    assert (seen["counted"], seen["button"]) == ("40 requests", "Submit batch")
    assert seen["status"] == "completed", seen["samples"]
    last = seen["samples"][-1]
    assert (last["value"], last["percent"], last["counts"]) == (100, "100%", "40 of 40 requests done · 0 failed")
    output = seen["output"]
    assert output["filename"] == f"{seen['batchId']}-output.jsonl"
    assert [row["custom_id"] for row in output["rows"]] == [f"line-{n}" for n in range(1, 41)]
    assert all((row["status"], row["error"], row["dims"]) == (200, None, 1536) for row in output["rows"])
    assert seen["errorsShown"] is False
    calls = seen["requested"]
    assert "POST /api/v1/files" in calls and "POST /api/v1/batches" in calls
    assert f"GET /api/v1/batches/{seen['batchId']}" in calls
    assert any(call.startswith("GET /api/v1/files/") and call.endswith("/content") for call in calls)
    assert sim.stats()["counts"].get("embeddings", 0) == 1  # 40 one-text lines: one packed call


def _request(custom_id: str, **body: Any) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
                       "body": {"model": EMBED, **body}})


def test_request_counts_grow_on_screen_and_the_error_file_downloads(drive: Drive, sim: Sim, page_url: str) -> None:
    # JSONL request lines of 1,000 texts: two per chunk, three chunks finishing ~0.8 s, 2.5 s, 4.2 s in.
    sim.fault(faults=[{"kind": "slow_first_byte", "path": "embeddings", "ms": ms, "count": 1}
                      for ms in (800, 2500, 4200)])
    lines = [_request(f"big-{n}", input=[f"text {n}.{i}" for i in range(1000)], dimensions=8) for n in range(6)]
    lines.append(_request("refused", input="too many dimensions", dimensions=4096))
    seen = drive("batch", url=page_url, lines=lines, filename="requests.jsonl")
    assert seen["pageErrors"] == []
    assert seen["counted"] == "7 requests"
    assert seen["status"] == "completed", seen["samples"]
    values = [s["value"] for s in seen["samples"] if s["visible"]]
    assert values == sorted(values), "progress never goes back"
    partial = [s["counts"] for s in seen["samples"] if s["visible"] and 0 < s["value"] < 100]
    assert partial, f"no progress shown while running: {seen['samples']}"
    assert seen["samples"][-1]["counts"] == "6 of 7 requests done · 1 failed"
    assert [row["custom_id"] for row in seen["output"]["rows"]] == [f"big-{n}" for n in range(6)]
    assert seen["errorsShown"] is True
    assert seen["errors"]["filename"] == f"{seen['batchId']}-errors.jsonl"
    [refused] = seen["errors"]["rows"]
    assert (refused["custom_id"], refused["status"]) == ("refused", 400)
