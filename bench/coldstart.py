"""Item 4: cold start. What a fresh worker pays before it can answer.

Three measurements, each in fresh processes and repeated:

* ``import function_app`` alone (what Azure's worker does when it indexes the app), next to a bare
  ``python -c pass`` so interpreter start-up can be told apart; wall time (the target, under 0.4 s)
  and the process's CPU time, which other people's jobs on a shared machine disturb far less;
* spawn of the local host to the first 200 from ``GET /api/health`` (no upstream call), and to the
  first 200 from a chat completion (builds the upstream client and opens its first connection).
  The host binds its port before importing the app, so the request is sent as soon as the port
  accepts and waits in the listen backlog: the time measured is the host's, not our polling's;
* ``python -X importtime -c "import function_app"``: which top-level packages dominate.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from devhost.ports import LOCALHOST, free_port
from devhost.stack import SIMULATOR_API_KEY

ROOT = Path(__file__).resolve().parent.parent
CHAT_BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})


def _env(simulator_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "OPENAI_BASE_URL": f"{simulator_url}/openai/v1",
        "AZURE_OPENAI_API_KEY": SIMULATOR_API_KEY,
        "AZURE_OPENAI_ENDPOINT": "",
        "OPENAI_MODELS": "gpt-4o-mini",
        "AzureWebJobsStorage": "",
        "PYTHONPATH": str(ROOT),
        "DEVHOST_LOG_LEVEL": "warning",
    })
    return env


IMPORT_TARGET_S = 0.4


def _timed_import(env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds inside the interpreter to import function_app, its CPU seconds, seconds spawn to exit)."""
    code = ("import time; t, c = time.perf_counter(), time.process_time(); import function_app; "
            "print(time.perf_counter() - t, time.process_time() - c)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    wall, cpu = (float(x) for x in done.stdout.split())
    return wall, cpu, time.perf_counter() - started


def _bare_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
    return time.perf_counter() - started


def _request(port: int, raw: bytes, deadline: float) -> int:
    """Send ``raw`` once the port accepts; the response's status code (0 on timeout)."""
    while time.perf_counter() < deadline:
        try:
            sock = socket.create_connection((LOCALHOST, port), timeout=max(0.1, deadline - time.perf_counter()))
        except OSError:
            time.sleep(0.002)
            continue
        with sock:
            sock.sendall(raw)
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"HTTP/1.1 "):
                return int(data.split(b" ", 2)[1])
            time.sleep(0.002)  # connection dropped before an answer: try again
    return 0


def _first_response(env: dict[str, str], *, chat: bool) -> dict[str, Any]:
    """Spawn the host and time its first answer to one request."""
    port = free_port()
    if chat:
        raw = (f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: {LOCALHOST}:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(CHAT_BODY)}\r\nConnection: close\r\n\r\n"
               ).encode() + CHAT_BODY.encode()
    else:
        raw = f"GET /api/health HTTP/1.1\r\nHost: {LOCALHOST}:{port}\r\nConnection: close\r\n\r\n".encode()
    argv = [sys.executable, "-m", "devhost", "--host", LOCALHOST, "--port", str(port), "--script-root", str(ROOT)]
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        status = _request(port, raw, started + 60)
        elapsed = time.perf_counter() - started
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return {"status": status, "seconds": round(elapsed, 4)}


def importtime(env: dict[str, str], top: int = 12) -> dict[str, Any]:
    """Self time summed by top-level package, and the slowest first-level imports (cumulative)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import function_app"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    by_package: dict[str, int] = defaultdict(int)
    heavy: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, self_us, cumulative_us, name = line.replace("import time:", "|", 1).split("|")
        self_us, cumulative_us = self_us.strip(), cumulative_us.strip()
        if not self_us.isdigit():
            continue
        module = name.strip()
        by_package[module.split(".")[0]] += int(self_us)
        depth = (len(name) - len(name.lstrip()) - 1) // 2  # one space after the bar, then two per level
        if depth <= 2:
            heavy.append((int(cumulative_us), module))
        if module == "function_app":
            break  # what follows is the background warm-up, not the import
    total = sum(by_package.values())
    packages = sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)[:top]
    heavy.sort(reverse=True)
    return {
        "total_ms": round(total / 1000, 1),
        "by_package_ms": {name: round(us / 1000, 1) for name, us in packages},
        "slowest_imports_ms": [{"module": name, "cumulative_ms": round(us / 1000, 1)} for us, name in heavy[:top]],
    }


def run(simulator_url: str, *, repeats: int) -> dict[str, Any]:
    env = _env(simulator_url)
    _timed_import(env)  # fill the OS page cache and __pycache__ once: we measure warm-disk cold starts
    imports = [_timed_import(env) for _ in range(repeats)]
    bare = [_bare_python() for _ in range(repeats)]
    health = [_first_response(env, chat=False) for _ in range(repeats)]
    chat = [_first_response(env, chat=True) for _ in range(repeats)]

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    def spread(values: list[float]) -> list[float]:
        return [round(min(values), 3), round(max(values), 3)]

    health_s = [h["seconds"] for h in health if h["status"] == 200]
    chat_s = [c["seconds"] for c in chat if c["status"] == 200]
    return {
        "repeats": repeats,
        "python_bare_s": med(bare),
        "import_function_app_s": med([i[0] for i in imports]),
        "import_function_app_range_s": spread([i[0] for i in imports]),
        "import_function_app_cpu_s": med([i[1] for i in imports]),
        "import_target_s": IMPORT_TARGET_S,
        "process_import_exit_s": med([i[2] for i in imports]),
        "first_health_200_s": med(health_s) if health_s else None,
        "first_health_200_range_s": spread(health_s) if health_s else None,
        "first_chat_200_s": med(chat_s) if chat_s else None,
        "first_chat_200_range_s": spread(chat_s) if chat_s else None,
        "statuses": {"health": [h["status"] for h in health], "chat": [c["status"] for c in chat]},
        "importtime": importtime(env),
        "target_s": 1.0,
    }
