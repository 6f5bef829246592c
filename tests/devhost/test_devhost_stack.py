"""Stack decisions and failure reporting that need no long-running stack."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.connections import DEVSTORE_ACCOUNT, azurite_connection_string
from devhost.ports import free_port, free_ports, is_listening
from devhost.processes import live_group_members
from devhost.stack import SIMULATOR_API_KEY, PortBusyError, Stack
from tests.devhost.helpers import SAMPLE_APP

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port with a listener that is not ours."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_busy_host_port_is_reported_and_nothing_is_started(busy_port: int, tmp_path: Path) -> None:
    stack = Stack(SAMPLE_APP, host_port=busy_port, simulator=False, azurite=False, log_dir=tmp_path)
    with pytest.raises(PortBusyError, match=f"port {busy_port}.*already in use"):
        stack.start()
    assert stack.processes() == {}


def test_busy_azurite_port_is_reported(busy_port: int, tmp_path: Path) -> None:
    host_port, blob, table = free_ports(3)
    stack = Stack(SAMPLE_APP, host_port=host_port, simulator=False, azurite_ports=(blob, busy_port, table),
                  log_dir=tmp_path)
    with pytest.raises(PortBusyError, match="Azurite needs ports"):
        stack.start()
    assert stack.processes() == {}


def test_cli_exits_non_zero_on_busy_port(busy_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devhost", "--port", str(busy_port), "--script-root", str(SAMPLE_APP)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 1
    assert f"port {busy_port} on 127.0.0.1 is already in use" in result.stderr


def test_broken_function_app_fails_start_with_its_output(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "function_app.py").write_text("raise RuntimeError('broken on purpose')\n")
    stack = Stack(app, host_port=free_port(), simulator=False, azurite=False, log_dir=tmp_path / "logs")
    with pytest.raises(Exception, match="broken on purpose"):
        stack.start()
    assert all(not p.running for p in stack.processes().values())


def test_storage_connection_string_for_custom_azurite_ports(tmp_path: Path) -> None:
    stack = Stack(SAMPLE_APP, host_port=free_port(), simulator=False, azurite_ports=(1, 2, 3), log_dir=tmp_path)
    stack._plan()  # decisions only; nothing is started
    conn = stack.storage_connection_string or ""
    assert f"QueueEndpoint=http://127.0.0.1:2/{DEVSTORE_ACCOUNT}" in conn
    assert stack.env["AzureWebJobsStorage"] == conn
    assert stack.simulator_url is None


def test_auto_simulator_depends_on_configured_endpoints(tmp_path: Path) -> None:
    configured = Stack(SAMPLE_APP, host_port=free_port(), azurite=False, log_dir=tmp_path,
                       env={"AZURE_OPENAI_ENDPOINT": "https://example.openai.azure.com"})
    configured._plan()
    assert configured.simulator_url is None
    assert "OPENAI_BASE_URL" not in configured.env or configured.env["OPENAI_BASE_URL"] != ""

    unconfigured = Stack(SAMPLE_APP, host_port=free_port(), azurite=False, log_dir=tmp_path,
                         env={"AZURE_OPENAI_ENDPOINT": "", "OPENAI_BASE_URL": ""})
    unconfigured._plan()
    assert unconfigured.simulator_url is not None
    assert unconfigured.env["OPENAI_BASE_URL"] == f"{unconfigured.simulator_url}/openai/v1"
    assert unconfigured.env["AZURE_OPENAI_API_KEY"] == SIMULATOR_API_KEY


HAVE_SIMULATOR = importlib.util.find_spec("simulator") is not None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def test_full_stack_starts_and_stop_leaves_no_processes(tmp_path: Path) -> None:
    """Azurite + simulator (when the package is there) + host, then nothing left running."""
    host_port, *azurite_ports = free_ports(4)
    stack = Stack(SAMPLE_APP, host_port=host_port, simulator=HAVE_SIMULATOR,
                  azurite_ports=(azurite_ports[0], azurite_ports[1], azurite_ports[2]), log_dir=tmp_path)
    with stack:
        groups = stack.pids()
        assert set(groups) == ({"host", "azurite", "simulator"} if HAVE_SIMULATOR else {"host", "azurite"})
        pids = [pid for members in groups.values() for pid in members]
        assert pids and all(_alive(pid) for pid in pids)
        assert httpx.get(f"{stack.host_url}/admin/host/status").status_code == 200
        if HAVE_SIMULATOR:
            assert stack.simulator_url is not None
            assert httpx.get(f"{stack.simulator_url}/health").status_code == 200
            assert stack.env["OPENAI_BASE_URL"] == f"{stack.simulator_url}/openai/v1"
            assert stack.env["AZURE_OPENAI_API_KEY"] == SIMULATOR_API_KEY
    stack.stop()  # idempotent

    assert not [pid for pid in pids if _alive(pid)]
    for process in stack.processes().values():
        assert process.pid is not None
        assert live_group_members(process.pid) == []
    assert stack.azurite_location is None  # the temporary data folder is gone


def test_run_reports_a_busy_port_and_exits_non_zero(busy_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devhost.run", "--port", str(busy_port), "--no-azurite", "--no-simulator",
         "--script-root", str(SAMPLE_APP)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 2
    assert f"port {busy_port}" in result.stderr
    assert "already in use" in result.stderr


def test_run_starts_prints_a_hint_and_stops_on_sigterm() -> None:
    port, dead = free_ports(2)
    env = {**os.environ, "AzureWebJobsStorage": azurite_connection_string((dead, dead, dead))}
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost.run", "--port", str(port), "--no-azurite", "--no-simulator",
         "--script-root", str(SAMPLE_APP)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        output = "".join(lines)
        assert f"Functions host  http://127.0.0.1:{port}" in output
        assert f"Try: curl -i http://127.0.0.1:{port}/svc/" in output
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not is_listening(port)
