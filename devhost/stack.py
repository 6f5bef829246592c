"""Start the whole local stack (Azurite, OpenAI simulator, Functions host) as subprocesses.

``make run``, the end-to-end tests and the benchmarks all need the same
thing: the real processes, started in the right order, each one waited for
until it answers, and all of them gone afterwards, even when a test failed
half-way. Real subprocesses (rather than in-process servers) are what lets
the tests kill the worker or restart Azurite mid-job.

What is started is decided from the effective settings, read the way the host
reads them: ``env`` given to the Stack, then the process environment, then
``local.settings.json`` (or its committed sample):

* Azurite: when ``AzureWebJobsStorage`` is ``UseDevelopmentStorage=true`` and
  nothing listens on 10000-10002 yet (an Azurite already there is reused), or
  whenever ``azurite_ports`` is given.
* Simulator: when neither ``AZURE_OPENAI_ENDPOINT`` nor ``OPENAI_BASE_URL`` is
  set. The host then gets ``OPENAI_BASE_URL`` pointing at it and a dummy
  ``AZURE_OPENAI_API_KEY``.

Values derived from what the stack started override ``env``; this module
imports nothing heavy so test and benchmark processes stay lean.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from devhost.connections import (
    DEFAULT_AZURITE_PORTS,
    azurite_connection_string,
    expand_connection_string,
    is_development_storage,
)
from devhost.ports import LOCALHOST, free_port, http_get_status, is_listening, wait_until
from devhost.processes import ManagedProcess
from devhost.settings import read_local_settings

SIMULATOR_API_KEY = "local-simulator-key"
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


class StackError(RuntimeError):
    """A process of the stack could not be started (the message carries its output)."""


class PortBusyError(StackError):
    """A port the stack needs is taken by a process that is not ours."""


def find_azurite(start: Path) -> Path | None:
    """node_modules/.bin/azurite in ``start`` or a parent folder, else on PATH."""
    for folder in (start, *start.parents, _PACKAGE_PARENT):
        candidate = folder / "node_modules" / ".bin" / "azurite"
        if candidate.exists():
            return candidate
    found = shutil.which("azurite")
    return Path(found) if found else None


def _looks_like_azurite(queue_port: int) -> bool:
    answer = http_get_status(f"http://{LOCALHOST}:{queue_port}/devstoreaccount1?comp=list")
    return answer is not None and "azurite" in answer[1].get("server", "").lower()


def _prepend_path(value: str | None, *paths: Path) -> str:
    parts = list(dict.fromkeys(str(p) for p in paths))
    if value:
        parts.extend(p for p in value.split(os.pathsep) if p and p not in parts)
    return os.pathsep.join(parts)


class Stack:
    """The local stack as subprocesses; see the module docstring for what starts when."""

    def __init__(
        self,
        root: Path,
        host_port: int = 7071,
        *,
        simulator: bool | None = None,
        simulator_port: int | None = None,
        simulator_args: Sequence[str] = (),
        azurite: bool | None = None,
        azurite_ports: tuple[int, int, int] | None = None,
        azurite_location: Path | None = None,
        env: Mapping[str, str] | None = None,
        inherit_output: bool = False,
        log_dir: Path | None = None,
        startup_timeout: float = 60.0,
        python: str | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.host_port = host_port
        self.simulator_args = list(simulator_args)
        self.inherit_output = inherit_output
        self.startup_timeout = startup_timeout
        self.python = python or sys.executable
        self._want_simulator = simulator
        self._simulator_port = simulator_port
        self._want_azurite = azurite
        self._azurite_ports_requested = azurite_ports
        self._azurite_location_requested = azurite_location
        self._env_overrides = dict(env or {})

        self.host_url = f"http://{LOCALHOST}:{host_port}"
        self.simulator_url: str | None = None
        self.simulator_port: int | None = None
        self.azurite_ports: tuple[int, int, int] | None = None
        self.azurite_location: Path | None = None
        self.storage_connection_string: str | None = None
        self.env: dict[str, str] = {}

        # Output goes to <log_dir>/<process>.log; a temporary log_dir is made by start().
        self._own_log_dir = log_dir is None and not inherit_output
        self.log_dir: Path | None = None if inherit_output else log_dir
        self.host_log: Path | None = None
        self.simulator_log: Path | None = None
        self.azurite_log: Path | None = None

        self._temp_azurite_dir: Path | None = None
        self.host: ManagedProcess | None = None
        self.simulator: ManagedProcess | None = None
        self.azurite: ManagedProcess | None = None
        self._registered = False

    # ----------------------------------------------------------------- planning
    def _prepare_logs(self) -> None:
        if self._own_log_dir and self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="devhost-logs-"))
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self.host_log = self._log_path("host")

    def _log_path(self, name: str) -> Path | None:
        return None if self.log_dir is None else self.log_dir / f"{name}.log"

    def _effective(self, key: str, settings: Mapping[str, str]) -> str | None:
        for source in (self._env_overrides, os.environ, settings):
            if key in source:
                return source[key] or None
        return None

    def _plan_azurite(self, storage_setting: str | None) -> bool:
        if self._want_azurite is False:
            return False
        ports = self._azurite_ports_requested or DEFAULT_AZURITE_PORTS
        busy = [p for p in ports if is_listening(p)]
        if self._want_azurite is None and self._azurite_ports_requested is None:
            if not is_development_storage(storage_setting):
                return False
            if len(busy) == len(ports) and _looks_like_azurite(ports[1]):
                return False  # an Azurite is already running: use it
        if busy:
            raise PortBusyError(
                f"Azurite needs ports {ports}, but {busy} on {LOCALHOST} are already in use by another process; "
                "stop it or pass other azurite_ports"
            )
        self.azurite_ports = (ports[0], ports[1], ports[2])
        return True

    def _plan_simulator(self, settings: Mapping[str, str]) -> bool:
        wanted = self._want_simulator
        if wanted is None:
            endpoints = ("AZURE_OPENAI_ENDPOINT", "OPENAI_BASE_URL")
            wanted = not any(self._effective(key, settings) for key in endpoints)
        if not wanted:
            return False
        port = self._simulator_port or free_port()
        if is_listening(port):
            raise PortBusyError(
                f"the simulator needs port {port} on {LOCALHOST}, which is already in use by another process"
            )
        self.simulator_port = port
        self.simulator_url = f"http://{LOCALHOST}:{port}"
        return True

    def _plan(self) -> tuple[bool, bool]:
        settings = read_local_settings(self.root).values
        storage_setting = self._effective("AzureWebJobsStorage", settings)
        if is_listening(self.host_port):
            raise PortBusyError(
                f"the Functions host needs port {self.host_port} on {LOCALHOST}, "
                "which is already in use by another process"
            )
        start_azurite = self._plan_azurite(storage_setting)
        start_simulator = self._plan_simulator(settings)

        derived: dict[str, str] = {}
        if start_azurite:
            assert self.azurite_ports is not None
            self.storage_connection_string = azurite_connection_string(self.azurite_ports)
            derived["AzureWebJobsStorage"] = self.storage_connection_string
        elif storage_setting:
            self.storage_connection_string = expand_connection_string(storage_setting)
        if start_simulator:
            derived["OPENAI_BASE_URL"] = f"{self.simulator_url}/openai/v1"
            derived["AZURE_OPENAI_API_KEY"] = SIMULATOR_API_KEY
            # A configured Azure endpoint would otherwise win over the simulator.
            derived["AZURE_OPENAI_ENDPOINT"] = ""

        env = dict(os.environ)
        env.update(self._env_overrides)
        env.update(derived)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = _prepend_path(env.get("PYTHONPATH"), _PACKAGE_PARENT, self.root)
        self.env = env
        return start_azurite, start_simulator

    # ---------------------------------------------------------------- processes
    def _wait_ready(self, process: ManagedProcess, ready_check: str, probe: Callable[[], bool]) -> None:
        def abort() -> str | None:
            if process.running:
                return None
            return f"{process.name} exited with code {process.returncode} during startup; its output:\n{process.tail()}"

        try:
            ok = wait_until(probe, self.startup_timeout, abort=abort)
        except RuntimeError as exc:
            raise StackError(str(exc)) from None
        if not ok:
            raise StackError(
                f"{process.name} did not become ready ({ready_check}) within {self.startup_timeout:g}s; "
                f"its output:\n{process.tail()}"
            )

    def _azurite_process(self) -> ManagedProcess:
        binary = find_azurite(self.root)
        if binary is None:
            raise StackError("Azurite is not installed: run `npm ci` in the repository (node_modules/.bin/azurite)")
        if self.azurite_location is None:
            if self._azurite_location_requested is not None:
                self.azurite_location = Path(self._azurite_location_requested).resolve()
            else:
                self._temp_azurite_dir = Path(tempfile.mkdtemp(prefix="devhost-azurite-"))
                self.azurite_location = self._temp_azurite_dir
            self.azurite_location.mkdir(parents=True, exist_ok=True)
        assert self.azurite_ports is not None
        blob, queue, table = self.azurite_ports
        argv = [
            str(binary), "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry",
            "--location", str(self.azurite_location),
            "--blobHost", LOCALHOST, "--blobPort", str(blob),
            "--queueHost", LOCALHOST, "--queuePort", str(queue),
            "--tableHost", LOCALHOST, "--tablePort", str(table),
        ]  # fmt: skip
        self.azurite_log = self._log_path("azurite")
        return ManagedProcess("azurite", argv, cwd=self.root, env=self.env, log_path=self.azurite_log)

    def _launch_azurite(self) -> None:
        if self.azurite is None:
            self.azurite = self._azurite_process()
        self.azurite.start()

    def _await_azurite(self) -> None:
        assert self.azurite is not None
        ports = self.azurite_ports or DEFAULT_AZURITE_PORTS
        self._wait_ready(self.azurite, f"ports {ports}", lambda: all(is_listening(p) for p in ports))

    def _launch_simulator(self) -> None:
        if self.simulator is None:
            argv = [self.python, "-m", "simulator", "--host", LOCALHOST, "--port", str(self.simulator_port)]
            self.simulator_log = self._log_path("simulator")
            self.simulator = ManagedProcess(
                "simulator", argv + self.simulator_args, cwd=self.root, env=self.env, log_path=self.simulator_log
            )
        self.simulator.start()

    def _await_simulator(self) -> None:
        assert self.simulator is not None
        health = f"{self.simulator_url}/health"
        self._wait_ready(self.simulator, f"GET {health}", lambda: (http_get_status(health) or (0,))[0] == 200)

    def _launch_host(self) -> None:
        if self.host is None:
            argv = [
                self.python, "-m", "devhost",
                "--host", LOCALHOST, "--port", str(self.host_port), "--script-root", str(self.root),
            ]  # fmt: skip
            self.host = ManagedProcess("functions host", argv, cwd=self.root, env=self.env, log_path=self.host_log)
        self.host.start()

    def _await_host(self) -> None:
        assert self.host is not None
        status = f"{self.host_url}/admin/host/status"
        self._wait_ready(self.host, f"GET {status}", lambda: (http_get_status(status) or (0,))[0] == 200)

    # ------------------------------------------------------------------ public
    def start(self) -> Stack:
        """Start what is needed and return once every process answers.

        The processes are launched together and then waited for one by one:
        Azurite's start-up overlaps the host's imports, and the host's queue
        listeners simply retry until Azurite answers.
        """
        if not self._registered:
            atexit.register(self.stop)
            self._registered = True
        try:
            start_azurite, start_simulator = self._plan()
            self._prepare_logs()
            if start_azurite:
                self._launch_azurite()
            if start_simulator:
                self._launch_simulator()
            self._launch_host()
            if start_azurite:
                self._await_azurite()
            if start_simulator:
                self._await_simulator()
            self._await_host()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything (host first), then remove temporary folders. Safe to call twice."""
        for process in (self.host, self.simulator, self.azurite):
            if process is not None:
                process.stop()
        if self._temp_azurite_dir is not None:
            shutil.rmtree(self._temp_azurite_dir, ignore_errors=True)
            self._temp_azurite_dir = None
            self.azurite_location = None
        if self._own_log_dir and self.log_dir is not None and not os.environ.get("DEVHOST_KEEP_LOGS"):
            shutil.rmtree(self.log_dir, ignore_errors=True)
            self.log_dir = None
        if self._registered:
            atexit.unregister(self.stop)
            self._registered = False

    def kill_host(self) -> None:
        """SIGKILL the host's process group: a crash mid-invocation, as Azure would see it."""
        if self.host is not None:
            self.host.kill()

    def stop_host(self) -> None:
        """Stop the host gracefully (SIGTERM): in-flight queue messages are released."""
        if self.host is not None:
            self.host.stop()

    def restart_host(self) -> None:
        """Start the host again (stopping it gracefully first if it still runs)."""
        if self.host is None:
            raise StackError("the host was never started")
        if self.host.running:
            self.host.stop()
        self._launch_host()
        self._await_host()

    def stop_azurite(self, *, kill: bool = False) -> None:
        """Stop (or kill) Azurite but keep its data folder for a restart."""
        if self.azurite is None:
            raise StackError("this stack did not start Azurite")
        if kill:
            self.azurite.kill()
        else:
            self.azurite.stop()

    def restart_azurite(self, *, kill: bool = False) -> None:
        """Stop Azurite and start it again on the same ports and data folder."""
        self.stop_azurite(kill=kill)
        self._launch_azurite()
        self._await_azurite()

    def processes(self) -> dict[str, ManagedProcess]:
        """The child processes started so far, by role."""
        found = {"host": self.host, "simulator": self.simulator, "azurite": self.azurite}
        return {name: proc for name, proc in found.items() if proc is not None}

    def pids(self) -> dict[str, list[int]]:
        """Live pids per role (whole process groups), e.g. to check nothing is left."""
        return {name: proc.group_pids() for name, proc in self.processes().items()}

    def failure(self) -> str | None:
        """A description of the first child that died on its own, if any."""
        for name, proc in self.processes().items():
            if proc.popen is not None and not proc.running:
                return f"{name} exited with code {proc.returncode}\n{proc.tail()}"
        return None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
