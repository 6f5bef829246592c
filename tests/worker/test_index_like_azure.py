"""function_app.py indexes cleanly in the Python worker that Azure runs.

The worker (``azure-functions-runtime``) installs only on Python >= 3.13, so it lives in its own
venv (``.venv-py313``, made by ``make test``); this test drives it as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.app_functions import app_functions

ROOT = Path(__file__).resolve().parents[2]
WORKER_PYTHON = ROOT / ".venv-py313" / "bin" / "python"

NO_WORKER = ("no .venv-py313: Python 3.13 was not found, so the Azure worker could not be installed "
             "(make test prints how to get it)")
# Locally a missing Python 3.13 is a plain skip; under CI it must never hide this check.
if not WORKER_PYTHON.exists() and os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
    pytest.fail(f"{NO_WORKER}: CI must index the app with Azure's worker", pytrace=False)
pytestmark = pytest.mark.skipif(not WORKER_PYTHON.exists(), reason=NO_WORKER)


@pytest.fixture(scope="module")
def indexed() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHON_ENABLE_INIT_INDEXING"] = "1"
    out = subprocess.run([str(WORKER_PYTHON), "tests/worker/index_like_azure.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout[out.stdout.index("{"):])


def test_worker_init_succeeds_and_enables_streaming(indexed: dict[str, Any]) -> None:
    assert indexed["status"] == "success", indexed["exception"]
    # The worker only reports an HTTP URI when every HTTP function uses the streaming types.
    assert indexed["capabilities"].get("HttpUri", "").startswith("http://")


def test_every_function_is_indexed_with_the_metadata_we_declared(indexed: dict[str, Any]) -> None:
    by_name = {f["name"]: f for f in indexed["functions"]}
    expected = app_functions()
    assert set(by_name) == set(expected)
    for name, fn in expected.items():
        trigger = by_name[name]["raw_bindings"][0]
        ours = fn.get_trigger().get_dict_repr()
        assert trigger["type"] == ours["type"]
        if trigger["type"] == "httpTrigger":
            assert trigger["route"] == ours["route"]
            assert by_name[name]["raw_bindings"][1] == {"direction": "OUT", "type": "http", "name": "$return"}
        elif trigger["type"] == "timerTrigger":
            assert (trigger["schedule"], trigger["runOnStartup"], trigger["useMonitor"]) == (
                ours["schedule"], ours["runOnStartup"], ours["useMonitor"])
        else:
            assert trigger["queueName"] == ours["queueName"] and trigger["connection"] == ours["connection"]


def test_the_retention_sweep_is_an_hourly_timer_that_does_not_run_at_startup(indexed: dict[str, Any]) -> None:
    sweep = {f["name"]: f for f in indexed["functions"]}["data_retention_sweep"]["raw_bindings"][0]
    assert sweep == {"direction": "IN", "type": "timerTrigger", "name": "timer", "schedule": "0 23 * * * *",
                     "runOnStartup": False, "useMonitor": True}


def test_every_api_route_requires_a_function_key(indexed: dict[str, Any]) -> None:
    http = [f["raw_bindings"][0] for f in indexed["functions"] if f["raw_bindings"][0]["type"] == "httpTrigger"]
    api = {b["route"]: b["authLevel"] for b in http if b["route"].startswith("v1/")}
    assert api and set(api.values()) == {"FUNCTION"}
    public = {b["route"] for b in http if b["authLevel"] == "ANONYMOUS"}
    assert "health" in public and not any(route.startswith("v1/") for route in public)
