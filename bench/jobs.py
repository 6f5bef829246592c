"""Item 5: embedding jobs, measured by ``bench/embedding_jobs.py`` (owned by the jobs pipeline).

We only run it, once per size, each in its own process (it starts its own stack with Azurite and
a TPM-limited simulator), and collect what it writes. A failure is recorded, not raised: one
broken item must not lose the figures of the others.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_size(inputs: int, tpm: int, *, timeout: float) -> dict[str, Any]:
    """One job of ``inputs`` texts against a simulator limited to ``tpm`` tokens per minute."""
    if not (ROOT / "bench" / "embedding_jobs.py").exists():
        return {"inputs": inputs, "error": "bench/embedding_jobs.py is not there (yet)"}
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as folder:
        output = Path(folder) / "embedding_jobs.json"
        argv = [sys.executable, "-m", "bench.embedding_jobs", "--inputs", str(inputs), "--tpm", str(tpm),
                "--timeout", str(timeout), "--output", str(output)]
        started = time.perf_counter()
        try:
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout + 120, check=False)
        except subprocess.TimeoutExpired:
            return {"inputs": inputs, "tpm_limit": tpm, "error": f"did not finish within {timeout + 120:.0f} s"}
        if done.returncode != 0 or not output.exists():
            tail = (done.stderr or done.stdout)[-1500:]
            return {"inputs": inputs, "tpm_limit": tpm, "error": f"exit {done.returncode}: {tail}"}
        result: dict[str, Any] = json.loads(output.read_text())
        result["wall_s"] = round(time.perf_counter() - started, 1)
        return result


def run(sizes: list[tuple[int, int]], *, timeout: float) -> dict[str, Any]:
    return {"runs": [run_size(inputs, tpm, timeout=timeout) for inputs, tpm in sizes]}
