"""Fixtures for the embedding-job tests: real Azurite, the real simulator, real ports chosen free.

Two levels:

* ``pipeline``: Azurite and the simulator as subprocesses, the job handlers called in this process
  (fast, and failure points can be injected between steps);
* ``job_stack``: the whole local stack (Azurite + simulator + devhost running ``function_app.py``),
  driven only through HTTP and the queue, as a back end would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devhost.connections import azurite_connection_string
from devhost.ports import free_ports, is_listening

ROOT = Path(__file__).resolve().parents[2]
MODELS = "text-embedding-3-small,text-embedding-3-large,embed=text-embedding-3-small"


def _wait(check: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout}s")


class Azurite:
    """An Azurite subprocess on free ports, restartable on the same ports and data folder."""

    def __init__(self) -> None:
        self.ports = tuple(free_ports(3))
        self.location = Path(tempfile.mkdtemp(prefix="jobs-azurite-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.connection_string = azurite_connection_string(self.ports)  # type: ignore[arg-type]

    def start(self) -> None:
        binary = ROOT / "node_modules" / ".bin" / "azurite"
        blob, queue, table = self.ports
        self.proc = subprocess.Popen(
            [str(binary), "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry",
             "--location", str(self.location), "--blobHost", "127.0.0.1", "--blobPort", str(blob),
             "--queueHost", "127.0.0.1", "--queuePort", str(queue), "--tableHost", "127.0.0.1",
             "--tablePort", str(table)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait(lambda: all(is_listening(p) for p in self.ports), 30, "azurite", self.proc)

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.location, ignore_errors=True)


class Simulator:
    def __init__(self, *args: str) -> None:
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "simulator", "--host", "127.0.0.1", "--port",
                                      str(self.port), *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.http = httpx.Client(base_url=self.url, timeout=10)
        _wait(self._healthy, 30, "simulator", self.proc)

    def _healthy(self) -> bool:
        try:
            return self.http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def reset(self) -> None:
        self.http.post("/_sim/reset", json={"config": True}).raise_for_status()

    def configure(self, **fields: Any) -> None:
        self.http.post("/_sim/config", json=fields).raise_for_status()

    def fault(self, spec: Any) -> None:
        self.http.post("/_sim/faults", json=spec).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/_sim/stats", params={"limit": 0})
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def requests(self, route: str) -> list[dict[str, Any]]:
        """The simulator's records of the latest requests to ``route`` (e.g. "embeddings")."""
        response = self.http.get("/_sim/stats", params={"route": route})
        response.raise_for_status()
        return response.json()["recent"]  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server = Azurite()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    server = Simulator()
    try:
        yield server
    finally:
        server.stop()


def _reset_process_state() -> None:
    from shared.lazy import forget_process_state

    forget_process_state()


@pytest.fixture
async def pipeline(azurite: Azurite, simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The job pipeline in this process, on a fresh queue/container/table per test."""
    suffix = os.urandom(3).hex()
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "OPENAI_BASE_URL": f"{simulator.url}/openai/v1",
        "AZURE_OPENAI_API_KEY": "test-key",
        "AZURE_OPENAI_ENDPOINT": "",
        "OPENAI_MODELS": MODELS,
        "RETRY_MAX_ATTEMPTS": "3",
        "EMBEDDING_JOBS_QUEUE": f"jobs-{suffix}",
        "EMBEDDING_JOBS_CONTAINER": f"jobs-{suffix}",
        "EMBEDDING_JOBS_TABLE": f"jobs{suffix}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    simulator.reset()
    _reset_process_state()
    from tests.jobs.harness import Pipeline

    harness = Pipeline(azurite, simulator)
    await harness.open()
    try:
        yield harness
    finally:
        await harness.close()
        _reset_process_state()


class JobStack:
    """The whole local stack for end-to-end job tests, plus clients for HTTP, storage and the simulator."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=stack.host_url, timeout=60)
        assert stack.simulator_url is not None
        self.sim = _SimControl(stack.simulator_url)
        self.connection_string: str = stack.storage_connection_string

    def close(self) -> None:
        self.http.close()
        self.sim.http.close()


class _SimControl(Simulator):
    def __init__(self, url: str) -> None:  # an already running simulator (the stack's)
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)


# Short leases so that a message held by a killed host comes back within seconds (Azure: 10 min).
STACK_ENV = {
    "OPENAI_MODELS": MODELS,
    "RETRY_MAX_ATTEMPTS": "3",
    "EMBEDDING_JOBS_QUEUE": "embedding-jobs",
    "EMBEDDING_JOBS_CONTAINER": "embedding-jobs",
    "EMBEDDING_JOBS_TABLE": "embeddingjobs",
    "DEVHOST_QUEUE_LEASE_SECONDS": "6",
}


@pytest.fixture(scope="session")
def job_stack() -> Iterator[JobStack]:
    from tests.e2e.conftest import running_stack

    with running_stack(STACK_ENV) as stack:
        running = JobStack(stack)
        try:
            yield running
        finally:
            running.close()


@pytest.fixture
def e2e(job_stack: JobStack) -> JobStack:
    job_stack.sim.reset()
    return job_stack
