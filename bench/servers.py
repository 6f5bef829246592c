"""The processes under test: the simulator and the gateway in the local host (one ``Stack``), the
floor (``bench/floor.py``, a bare pass-through on the local host's server stack), and optionally
the LiteLLM proxy, all against the same simulator.

CPU layout on two cores (``pin=True``): the proxy under test (gateway, floor or LiteLLM, only one
of them is loaded at a time) gets CPU 0 to itself, as a Functions worker would have its instance; the
simulator and the load generator share CPU 1. The direct runs use the very same simulator and
generator placement, so "through minus direct" isolates what the hop costs. Other people's jobs
can still land on either core: that is why every run is repeated and interleaved.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import peer
from bench.procstat import pin
from devhost.ports import LOCALHOST, free_ports
from devhost.processes import ManagedProcess
from devhost.stack import SIMULATOR_API_KEY, Stack

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gpt-4o-mini"
PROXY_CPU = 0
CLIENT_CPU = 1

GATEWAY_ENV = {
    "OPENAI_MODELS": f"{MODEL},text-embedding-3-small",
    # No storage: the queue listeners (embedding jobs) stay off, so the host process does HTTP
    # only, as the Python worker does in Azure (queue polling lives in the Functions host there).
    "AzureWebJobsStorage": "",
    "REQUEST_TIMEOUT_SECONDS": "60",
    "CORS_ALLOWED_ORIGINS": "",
}


@dataclass
class Target:
    """One way to reach the simulator's chat completions, as the load generator needs it."""

    name: str
    url: str
    headers: list[str]
    pid: int | None  # the proxy process to charge CPU to (None: direct)


@dataclass
class Servers:
    """Everything started for one benchmark run; ``stop()`` ends all of it."""

    stack: Stack
    pinned: bool
    targets: dict[str, Target] = field(default_factory=dict)
    litellm: ManagedProcess | None = None
    litellm_status: dict[str, Any] = field(default_factory=dict)
    floor: ManagedProcess | None = None

    @property
    def simulator_pid(self) -> int:
        assert self.stack.simulator is not None and self.stack.simulator.pid is not None
        return self.stack.simulator.pid

    @property
    def simulator_url(self) -> str:
        assert self.stack.simulator_url is not None
        return self.stack.simulator_url

    def configure_simulator(self, **patch: Any) -> None:
        """Patch the simulator's live config and clear its request records."""
        _post(f"{self.simulator_url}/_sim/reset", {"config": True})
        if patch:
            _post(f"{self.simulator_url}/_sim/config", patch)

    def stop(self) -> None:
        for process in (self.litellm, self.floor):
            if process is not None:
                process.stop()
        self.stack.stop()


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def start(*, with_litellm: bool, pin_cpus: bool = True, log_dir: Path | None = None,
          with_floor: bool = True) -> Servers:
    """Start simulator + gateway host + floor (and LiteLLM if asked and installed), pinned when possible."""
    host_port, sim_port = free_ports(2)
    stack = Stack(ROOT, host_port, simulator=True, simulator_port=sim_port, azurite=False, env=GATEWAY_ENV,
                  log_dir=log_dir)
    stack.start()
    servers = Servers(stack=stack, pinned=pin_cpus and cpu_count() >= 2)
    try:
        assert stack.host is not None and stack.host.pid is not None
        if servers.pinned:
            pin(stack.host.pid, {PROXY_CPU})
            pin(servers.simulator_pid, {CLIENT_CPU})
        sim = servers.simulator_url
        servers.targets["direct"] = Target("direct", f"{sim}/openai/v1/chat/completions",
                                           [f"api-key: {SIMULATOR_API_KEY}"], None)
        servers.targets["gateway"] = Target("gateway", f"{stack.host_url}/api/v1/chat/completions", [],
                                            stack.host.pid)
        if with_floor:
            _start_floor(servers, log_dir)
        if with_litellm:
            _start_litellm(servers, log_dir)
    except BaseException:
        servers.stop()
        raise
    return servers


def _start_floor(servers: Servers, log_dir: Path | None) -> None:
    """The floor relay (``bench.floor``) in front of the same simulator, on the proxy's CPU."""
    port = free_ports(1)[0]
    argv = [sys.executable, "-m", "bench.floor", "--port", str(port), "--upstream",
            f"{servers.simulator_url}/openai/v1", "--api-key", SIMULATOR_API_KEY]
    folder = log_dir or Path(servers.stack.log_dir or ".")
    process = ManagedProcess("floor", argv, cwd=ROOT, env=dict(os.environ), log_path=folder / "floor.log")
    servers.floor = process
    process.start()
    if not wait_http_ok(f"http://{LOCALHOST}:{port}/health", timeout=30.0, process=process):
        raise RuntimeError(f"the floor relay did not start: {process.tail(20)}")
    assert process.pid is not None
    if servers.pinned:
        pin(process.pid, {PROXY_CPU})
    servers.targets["floor"] = Target("floor", f"http://{LOCALHOST}:{port}/openai/v1/chat/completions", [],
                                      process.pid)


def _start_litellm(servers: Servers, log_dir: Path | None) -> None:
    status = peer.availability()
    servers.litellm_status = dict(status)
    if not status["available"]:
        return
    port = free_ports(1)[0]
    process = peer.process(port, f"{servers.simulator_url}/openai/v1", SIMULATOR_API_KEY, MODEL,
                           log_dir or Path(servers.stack.log_dir or "."))
    servers.litellm = process
    started = time.perf_counter()
    process.start()
    ready = wait_http_ok(f"http://{LOCALHOST}:{port}/health/liveliness", timeout=120.0, process=process)
    if not ready:
        servers.litellm_status.update(available=False, reason=f"LiteLLM did not start: {process.tail(20)}")
        process.stop()
        servers.litellm = None
        return
    servers.litellm_status["startup_s"] = round(time.perf_counter() - started, 2)
    assert process.pid is not None
    if servers.pinned:
        pin(process.pid, {PROXY_CPU})
    servers.targets["litellm"] = Target("litellm", f"http://{LOCALHOST}:{port}/v1/chat/completions", [],
                                        process.pid)


def wait_http_ok(url: str, *, timeout: float, process: ManagedProcess | None = None) -> bool:
    """Poll ``url`` until it answers 200 (False on timeout or when ``process`` died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.running:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.1)
    return False
