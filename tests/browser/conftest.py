"""Fixtures for the browser tests: the local stack, two static origins, and headless Chromium via node.

The page is tested where front ends live: a real Chromium (Debian's ``chromium`` package, never a
downloaded browser) driven by ``playwright-core`` from npm. Node runs the browser side
(``driver.mjs``); pytest owns the processes and the assertions, so these tests sit in the same
``make test`` run and report like every other test.

Three origins take part: the function app itself (the page at ``/api/ui/``), a static server the
gateway's ``CORS_ALLOWED_ORIGINS`` allows, and one it does not. Ports are always chosen free: other
suites may run on this machine at the same time.

When Chromium (or node / playwright-core) is missing, the browser tests are skipped with the reason;
under CI they fail instead, so CI can never pass without having run them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import pytest

from devhost.ports import LOCALHOST, free_ports
from devhost.stack import Stack
from tests.e2e.conftest import Sim

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DRIVER = Path(__file__).with_name("driver.mjs")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
SCENARIO_TIMEOUT = 60.0

CHAT_MODELS = "gpt-4o-mini,gpt-4.1-mini,text-embedding-3-small,chat=gpt-4o-mini"
# An MCP server the gateway lets the page name (the simulator never contacts it).
MCP_SERVER = "https://mcp.example.test/api/mcp"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip locally with a plain reason; fail under CI, where the browser must be installed."""
    if in_ci():
        pytest.fail(f"{reason}. CI must run the browser tests: .ci/run installs Chromium (make browser).",
                    pytrace=False)
    pytest.skip(reason=f"{reason}; browser tests skipped (install: `sudo apt-get install chromium`, "
                "or `make browser INSTALL_BROWSER=1` as root)")


def find_chromium() -> str | None:
    """CHROMIUM_PATH wins; otherwise Debian's ``chromium`` on PATH."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with ``playwright-core`` installed from package.json."""
    binary = shutil.which("node")
    if binary is None:
        unavailable("Node.js is not installed (the browser driver runs on node)")
    if not (ROOT / "node_modules" / "playwright-core" / "package.json").exists():
        unavailable("playwright-core is not installed (run `npm ci`)")
    return binary


@pytest.fixture(scope="session")
def chromium(node: str) -> str:
    path = find_chromium()
    if path is None:
        unavailable("Chromium is not installed (Debian package `chromium`, or set CHROMIUM_PATH)")
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    """Static files from web/, no request logging on the test output, no caching between tests.

    ``index.html`` lists the test gateway's origin in its ``gateway-origins`` meta tag, as whoever
    hosts a copy of the page does for theirs (set once the gateway's port is known).
    """

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript", ".css": "text/css"}
    gateway_origins: str | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.gateway_origins is None or urlsplit(self.path).path not in ("/", "/index.html"):
            super().do_GET()
            return
        page = re.sub(r'(<meta name="gateway-origins" content=")[^"]*(">)',
                      lambda m: m.group(1) + str(self.gateway_origins) + m.group(2),
                      (WEB / "index.html").read_text(), count=1).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def end_headers(self) -> None:
        self.send_header("cache-control", "no-store")
        super().end_headers()


@dataclass
class StaticSite:
    """web/ served on its own origin, as a front end hosted elsewhere would be."""

    origin: str
    server: ThreadingHTTPServer

    def page(self, gateway: str) -> str:
        return f"{self.origin}/index.html?gateway={gateway}"


def _serve_static(port: int) -> StaticSite:
    handler = functools.partial(_QuietHandler, directory=str(WEB))
    server = ThreadingHTTPServer((LOCALHOST, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"static-{port}", daemon=True).start()
    return StaticSite(f"http://{LOCALHOST}:{port}", server)


@dataclass
class Origins:
    allowed: StaticSite
    refused: StaticSite


@pytest.fixture(scope="package")
def origins() -> Iterator[Origins]:
    allowed_port, refused_port = free_ports(2)
    sites = Origins(_serve_static(allowed_port), _serve_static(refused_port))
    try:
        yield sites
    finally:
        for site in (sites.allowed, sites.refused):
            site.server.shutdown()
            site.server.server_close()


@pytest.fixture(scope="package")
def browser_stack(origins: Origins) -> Iterator[Stack]:
    """Host + simulator + Azurite; only the ``allowed`` static origin is in CORS_ALLOWED_ORIGINS."""
    host, sim, blob, queue, table = free_ports(5)
    env = {
        "OPENAI_MODELS": CHAT_MODELS,
        "CORS_ALLOWED_ORIGINS": origins.allowed.origin,
        "MCP_ALLOWED_SERVERS": MCP_SERVER,
        # One attempt: an injected 429 or 503 reaches the page at once instead of being retried.
        "RETRY_MAX_ATTEMPTS": "1",
        "REQUEST_TIMEOUT_SECONDS": "30",
    }
    with Stack(ROOT, host, simulator=True, simulator_port=sim, azurite=True, azurite_ports=(blob, queue, table),
               env=env) as running:
        _QuietHandler.gateway_origins = running.host_url
        try:
            yield running
        finally:
            _QuietHandler.gateway_origins = None


@pytest.fixture(scope="package")
def gateway(browser_stack: Stack) -> str:
    """The gateway base URL as the page takes it (``?gateway=``): the host's ``/api``."""
    return f"{browser_stack.host_url}/api"


@pytest.fixture(scope="package")
def page_url(browser_stack: Stack) -> str:
    """The page served by the function app itself (same origin as the API)."""
    return f"{browser_stack.host_url}/api/ui/"


@pytest.fixture
def sim(browser_stack: Stack) -> Iterator[Sim]:
    """The simulator's control API, reset before each test."""
    assert browser_stack.simulator_url
    control = Sim(browser_stack.simulator_url)
    control.reset()
    try:
        yield control
    finally:
        control.http.close()


@pytest.fixture
def http(browser_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=browser_stack.host_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/browser/, emptied first so that what is there is from this run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.iterdir():
        if old.is_file() and old.suffix in (".png", ".jsonl"):
            old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser_endpoint(node: str, chromium: str) -> Iterator[str]:
    """One headless Chromium for the session (``driver.mjs serve``); each scenario gets its own context."""
    proc = subprocess.Popen([node, str(DRIVER), "serve", json.dumps({"chromium": chromium})], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        deadline = time.monotonic() + 30
        endpoint = ""
        while not endpoint and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                line = proc.stdout.readline()
                if line.startswith("ENDPOINT "):
                    endpoint = line.split(" ", 1)[1].strip()
        if not endpoint:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise RuntimeError(f"Chromium did not start (driver.mjs serve, exit {proc.returncode}):\n{err[-4000:]}")
        yield endpoint
    finally:
        # Closing stdin is the driver's cue to close the browser; the process group is only ours.
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


class ScenarioError(AssertionError):
    """The browser side of a test failed; carries the driver's message and output."""


Drive = Callable[..., dict[str, Any]]


@pytest.fixture
def drive(node: str, chromium: str, browser_endpoint: str, artifacts: Path, request: pytest.FixtureRequest) -> Drive:
    """Run one scenario of driver.mjs in a fresh headless Chromium and return what it observed.

    Screenshots land in test-artifacts/browser/ (a failing scenario leaves ``<test>-failure.png``).
    """

    def run(scenario: str, **args: Any) -> dict[str, Any]:
        payload = {"chromium": chromium, "endpoint": browser_endpoint, "artifacts": str(artifacts),
                   "name": request.node.name, **args}
        started = time.monotonic()
        try:
            done = subprocess.run([node, str(DRIVER), scenario, json.dumps(payload)], cwd=ROOT,
                                  capture_output=True, text=True, timeout=SCENARIO_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
            raise ScenarioError(f"scenario {scenario!r} did not finish in {SCENARIO_TIMEOUT:g}s:\n{stderr}") from None
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise ScenarioError(
                f"scenario {scenario!r} failed (exit {done.returncode}) after {time.monotonic() - started:.1f}s\n"
                f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
        return result

    return run
