"""Deferred imports of the heavy SDKs, and a warm-up that loads them off the critical path.

``openai`` (with ``httpx2``) takes about two thirds of a cold ``import function_app``. Functions indexes
the app before it can answer anything, so the gateway's modules reach the SDK through a proxy that
imports it on first attribute access, and a background thread imports it right after indexing,
while the host is still starting up. A request that needs the SDK before the thread is done simply
waits on the import lock for the remainder; nothing is imported twice.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any

WARM_MODULES = ("openai", "httpx2", "aiohttp")


class LazyModule:
    """Stands in for a module until one of its attributes is needed."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)


def warm_up_in_background(modules: tuple[str, ...] = WARM_MODULES) -> threading.Thread:
    def load() -> None:
        for name in modules:
            importlib.import_module(name)

    thread = threading.Thread(target=load, name="gateway-warm-up", daemon=True)
    thread.start()
    return thread
