"""What a cold ``import function_app`` loads, and what it leaves for later. No timing here (timing
targets live in ``make bench``): only which modules are imported, checked in fresh interpreters."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest

from bench.servers import ROOT
from shared.lazy import importing_without_gc

# Not needed to index the app: the request pipeline, the SDKs and the storage/identity/telemetry
# clients. Indexing must not pay for them (the request pipeline loads in the background).
DEFERRED = ("shared.http", "shared.gateway", "shared.upstream_http", "shared.jobs", "openai", "httpx2", "aiohttp",
            "azure.identity", "azure.storage", "azure.data", "azure.monitor", "opentelemetry.sdk")


def _modules_after_import(*, warm_up: bool) -> dict[str, object]:
    """sys.modules (and the GC's state) in a fresh interpreter right after ``import function_app``."""
    code = "\n".join([
        "import gc, json, sys, threading",
        "import shared.lazy",
        *([] if warm_up else ["shared.lazy.warm_up_in_background = lambda *args, **kwargs: None"]),
        "import function_app",
        "for thread in threading.enumerate():",
        "    if thread.name == 'gateway-warm-up':",
        "        thread.join(60)",
        "print(json.dumps({'modules': sorted(sys.modules), 'gc_enabled': gc.isenabled(),",
        "                  'frozen': gc.get_freeze_count()}))",
    ])
    env = {"PATH": "/usr/bin:/bin", "OPENAI_MODELS": "gpt-4o-mini", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _loaded(modules: object, name: str) -> bool:
    assert isinstance(modules, list)
    return any(module == name or module.startswith(name + ".") for module in modules)


def test_indexing_imports_nothing_the_first_request_can_load_later() -> None:
    result = _modules_after_import(warm_up=False)
    assert [name for name in DEFERRED if _loaded(result["modules"], name)] == []
    assert result["gc_enabled"] is True  # paused for the imports only
    assert isinstance(result["frozen"], int) and result["frozen"] > 0  # import-time objects out of the GC's way


def test_the_warm_up_loads_the_request_pipeline_and_not_the_sdk() -> None:
    result = _modules_after_import(warm_up=True)
    for name in ("shared.http", "shared.gateway", "shared.upstream_http", "aiohttp", "azure.identity.aio"):
        assert _loaded(result["modules"], name), name
    # The openai SDK is off the request path: warming it would only compete with the first request.
    assert not _loaded(result["modules"], "openai")


def test_importing_without_gc_restores_the_collector() -> None:
    assert gc.isenabled()
    with importing_without_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ImportError), importing_without_gc():
        raise ImportError("a failed import still turns the collector back on")
    assert gc.isenabled()
    gc.disable()
    try:
        with importing_without_gc():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
        gc.unfreeze()
