"""The warm-up's imports finish before a function imports anything itself."""

from __future__ import annotations

import sys
import threading
import time
import types

import pytest

from shared import lazy


def test_the_first_invocation_waits_for_the_warm_up_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()

    class SlowFinder:
        """Stands in for a module whose import takes a while (the SDK's, on a cold instance)."""

        def find_spec(self, name: str, path: object = None, target: object = None) -> object:
            if name != "slow_warm_up_module":
                return None
            import importlib.machinery

            return importlib.machinery.ModuleSpec(name, self)

        def create_module(self, spec: object) -> types.ModuleType:
            started.set()
            release.wait(5)
            return types.ModuleType("slow_warm_up_module")

        def exec_module(self, module: types.ModuleType) -> None:
            return None

    monkeypatch.setattr(sys, "meta_path", [SlowFinder(), *sys.meta_path])
    monkeypatch.delitem(sys.modules, "slow_warm_up_module", raising=False)
    thread = lazy.warm_up_in_background(("slow_warm_up_module",))
    assert started.wait(5)
    threading.Timer(0.3, release.set).start()
    began = time.perf_counter()
    lazy.finish_warm_up()
    assert not thread.is_alive() and "slow_warm_up_module" in sys.modules
    assert time.perf_counter() - began >= 0.2
    began = time.perf_counter()
    lazy.finish_warm_up()  # later calls cost nothing
    assert time.perf_counter() - began < 0.05
