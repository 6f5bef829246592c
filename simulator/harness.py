"""Start a simulator subprocess and drive its `/_sim` control API (for tests, benchmarks, devhost).

    with SimulatorProcess.start("--ttft-ms", "50") as sim:
        client = openai.OpenAI(base_url=sim.api_url, api_key="x")
        sim.add_faults({"kind": "status", "status": 503, "count": 2})
        ...
        assert sim.stats()["counts"]["chat/completions"] == 3

The process binds port 0 and reports the port it got on its ready line, so parallel test runs
never collide and there is no window between picking a port and binding it.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_READY = re.compile(r"simulator listening on http://(\S+):(\d+)")


class SimulatorProcess:
    """A running `python -m simulator`; use `start()` and close it (or use `with`)."""

    def __init__(self, proc: subprocess.Popen[str], host: str, port: int, log: IO[str]) -> None:
        self.proc = proc
        self.host = host
        self.port = port
        self._log = log
        self.base_url = f"http://{host}:{port}"
        self.api_url = f"{self.base_url}/openai/v1"
        self.http = httpx.Client(base_url=self.base_url, timeout=10.0)

    @classmethod
    def start(
        cls,
        *args: str,
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
        timeout: float = 15.0,
    ) -> SimulatorProcess:
        """Launch with extra CLI `args` and wait for the ready line."""
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in close()
        proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--host", host, "--port", "0", *args],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, remaining))
            line = proc.stdout.readline() if ready else ""
            match = _READY.search(line)
            if match:
                return cls(proc, match.group(1), int(match.group(2)), log)
            if not line or remaining <= 0:
                proc.kill()
                proc.wait()
                log.seek(0)
                raise RuntimeError(f"simulator did not start (exit {proc.returncode}):\n{log.read()}")

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def server_log(self) -> str:
        """What the simulator wrote to stderr so far (for failure messages)."""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read()
        self._log.seek(0, os.SEEK_END)
        return text

    # --- control API -------------------------------------------------------------------------

    def _call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=json, params=params)
        response.raise_for_status()
        return response.json()

    def configure(self, **patch: Any) -> dict[str, Any]:
        """Patch the live config (`ttft_ms=300`, `tpm=1000`, `api_key="k"`, ...)."""
        result: dict[str, Any] = self._call("POST", "/_sim/config", json=patch)
        return result

    def add_faults(self, *faults: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/_sim/faults", json=list(faults))
        return result

    def stats(self, route: str | None = None, limit: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if route is not None:
            params["route"] = route
        if limit is not None:
            params["limit"] = limit
        result: dict[str, Any] = self._call("GET", "/_sim/stats", params=params)
        return result

    def reset(self, *, config: bool = True) -> None:
        """Clear stats, faults, stored responses and rate windows (and restore the start config)."""
        self._call("POST", "/_sim/reset", json={"config": config})
