"""``python -m devhost.run`` (what ``make run`` calls): the whole stack in one terminal.

Starts Azurite (data kept in ``.azurite/``) and the OpenAI simulator when the
settings call for them, then the Functions host on 7071, with all output in
this terminal. Ctrl-C or SIGTERM stops everything; so does any child dying,
because a half-running stack is more confusing than a stopped one.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devhost.stack import PortBusyError, Stack, StackError

DEFAULT_HOST_PORT = 7071
DEFAULT_SIMULATOR_PORT = 7072


class _Stop(Exception):
    """A stop signal arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost.run", description="Run the gateway locally.")
    parser.add_argument("--script-root", default=".", help="folder with function_app.py (default: current folder)")
    parser.add_argument("--port", type=int, default=DEFAULT_HOST_PORT, help="Functions host port (default 7071)")
    parser.add_argument("--simulator-port", type=int, default=DEFAULT_SIMULATOR_PORT, help="simulator port (7072)")
    parser.add_argument("--no-simulator", action="store_true", help="never start the simulator")
    parser.add_argument("--no-azurite", action="store_true", help="never start Azurite")
    return parser.parse_args(argv)


def curl_hint(host_url: str) -> str:
    """One command to try, built from the functions the host actually serves."""
    try:
        with urllib.request.urlopen(f"{host_url}/admin/functions", timeout=2) as response:
            functions = json.load(response)
    except (OSError, ValueError):
        functions = []
    http = [f for f in functions if f.get("trigger") == "httpTrigger"]
    chat = next((f for f in http if str(f.get("route", "")).endswith("chat/completions")), None)
    if chat is not None:
        body = '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello!"}]}'
        return f"curl -N {chat['url']} -H 'Content-Type: application/json' -d '{body}'"
    if http:
        return f"curl -i {http[0]['url']}"
    return f"curl -i {host_url}/admin/host/status"


def describe(stack: Stack) -> str:
    lines = ["", "Local stack is up:", f"  Functions host  {stack.host_url}"]
    if stack.simulator_url:
        lines.append(f"  OpenAI simulator {stack.simulator_url} (the host uses it via OPENAI_BASE_URL)")
    if stack.azurite_ports:
        ports = "/".join(str(p) for p in stack.azurite_ports)
        lines.append(f"  Azurite          blob/queue/table on ports {ports}, data in {stack.azurite_location}")
    elif stack.storage_connection_string:
        lines.append("  Storage          as configured by AzureWebJobsStorage (not started here)")
    lines += ["", f"Try: {curl_hint(stack.host_url)}", "Press Ctrl-C to stop.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.script_root).resolve()
    stack = Stack(
        root,
        host_port=args.port,
        simulator=False if args.no_simulator else None,
        simulator_port=args.simulator_port,
        azurite=False if args.no_azurite else None,
        azurite_location=root / ".azurite",
        inherit_output=True,
    )
    signal.signal(signal.SIGTERM, _raise_stop)
    # Ctrl-C must work even when started from a script that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stack.start()
        print(describe(stack), flush=True)
        while True:
            time.sleep(0.5)
            failure = stack.failure()
            if failure:
                print(f"\ndevhost.run: {failure}; stopping everything.", file=sys.stderr, flush=True)
                return 1
    except PortBusyError as exc:
        print(f"devhost.run: {exc}", file=sys.stderr)
        return 2
    except StackError as exc:
        print(f"devhost.run: could not start the local stack: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Stop):
        print("\nStopping...", flush=True)
        return 0
    finally:
        # A second Ctrl-C must not leave children half-stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
