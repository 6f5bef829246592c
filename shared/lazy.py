"""What the gateway builds on first use, not at import: process-wide objects, the heavy SDKs, and a
warm-up that loads those SDKs off the critical path.

**Process-wide objects** (settings, storage clients, the backend pool, the tracer, ...) have one
style: a getter decorated with ``@process_wide``, built on its first call (per distinct arguments)
and reused after. ``forget_process_state()`` drops every one of them at once, for tests that change
the environment; objects that hold connections and must be closed register their own reset with
``on_forget``. (Pure memos of constant inputs, like a tokenizer or the OpenAPI document, stay plain
``functools`` caches: the environment does not change them.)

Functions indexes the app before it can answer anything, so indexing imports only what indexing
needs; the request pipeline (``shared.http`` and what it imports: validation, the upstream transport
on aiohttp, the identity library that signs upstream calls) is imported by a background thread right
after indexing, while the host is still starting up. A request that needs a module before the thread
is done simply waits on the import lock for the remainder; nothing is imported twice. The ``openai``
SDK is not on the request path (``shared/upstream_http.py`` says why), so nothing warms it up: on a
one-vCPU instance a background import competes with the first request.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, ParamSpec, TypeVar, cast

P = ParamSpec("P")
T = TypeVar("T")

_forgetters: list[Callable[[], None]] = []


def process_wide(build: Callable[P, T]) -> Callable[P, T]:
    """``build``'s result, made once per process (per distinct arguments) and reused."""
    cached = functools.cache(build)
    _forgetters.append(cached.cache_clear)
    return cast("Callable[P, T]", cached)


def on_forget(forget: Callable[[], None]) -> None:
    """Also run ``forget`` in ``forget_process_state`` (for state kept other than by ``process_wide``)."""
    _forgetters.append(forget)


def forget_process_state() -> None:
    """Drop every process-wide object, so the next use builds it again from the environment (tests)."""
    for forget in _forgetters:
        forget()


# What the first API request needs and indexing does not: the request pipeline (``shared.http``), the
# model operations (``shared.gateway``, which brings validation and the upstream call; ``shared.http``
# loads it only when a route needs it) and the HTTP stack with the identity library.
WARM_MODULES = ("shared.http", "shared.gateway", "shared.upstream_http", "aiohttp", "azure.identity.aio")


@contextlib.contextmanager
def importing_without_gc() -> Iterator[None]:
    """Run a block of imports with the cyclic garbage collector paused, then freeze what they built.

    Importing builds many long-lived objects (modules, classes, functions, schemas) and no garbage, yet
    every allocation threshold crossed meanwhile triggers a collection that walks them again: about a
    tenth of a cold ``import function_app``. ``gc.freeze()`` afterwards moves them to the permanent
    generation, so the collections that requests trigger later do not walk them either.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
    gc.freeze()


class LazyModule:
    """Stands in for a module until one of its attributes is needed."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)


_warm_up: threading.Thread | None = None


def warm_up_in_background(modules: tuple[str, ...] = WARM_MODULES) -> threading.Thread:
    global _warm_up

    def load() -> None:
        for name in modules:
            importlib.import_module(name)

    thread = threading.Thread(target=load, name="gateway-warm-up", daemon=True)
    _warm_up = thread
    thread.start()
    return thread


def finish_warm_up(timeout: float = 30.0) -> None:
    """Wait for the warm-up imports before a function imports anything itself (the first call only).

    Two threads entering the Azure SDK's circular imports at once can see a partially initialised
    module (``ImportError: cannot import name ... from partially initialized module
    'azure.core.pipeline.transport'``, seen when a host started a queue listener beside the warm-up).
    The first invocation needs those modules anyway, so it waits for them instead of racing.
    """
    thread = _warm_up
    if thread is not None and thread.is_alive() and thread is not threading.current_thread():
        thread.join(timeout)
