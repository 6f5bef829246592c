"""Call user functions the way the Python worker does.

Async functions run on the event loop; sync ones run in a thread pool so a
blocking handler cannot stall streaming responses or queue polling (the worker
sizes that pool with ``PYTHON_THREADPOOL_THREAD_COUNT``). ``functionTimeout``
from host.json bounds every invocation. Invocations are logged with the same
"Executing/Executed 'Functions.x'" lines Core Tools prints, because people
grep for them.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func
from azure.functions import _abc

logger = logging.getLogger("devhost.functions")


class FunctionTimeoutError(TimeoutError):
    """The invocation ran past host.json's functionTimeout."""


class _TraceContext(_abc.TraceContext):
    def __init__(self, trace_parent: str = "", trace_state: str = "") -> None:
        self._trace_parent = trace_parent
        self._trace_state = trace_state

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(_abc.RetryContext):
    def __init__(self, retry_count: int = 0, max_retry_count: int = 0) -> None:
        self._retry_count = retry_count
        self._max_retry_count = max_retry_count

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func.Context):
    """The ``context`` argument a function may ask for."""

    _thread_local = threading.local()

    def __init__(self, function_name: str, invocation_id: str, function_directory: str, trace_parent: str = "") -> None:
        self._function_name = function_name
        self._invocation_id = invocation_id
        self._function_directory = function_directory
        self._trace = _TraceContext(trace_parent)
        self._retry = _RetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> _abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> _abc.RetryContext:
        return self._retry


class Invoker:
    """Runs user functions with the host's timeout and threading rules."""

    def __init__(self, function_timeout: float | None, function_directory: str = ".") -> None:
        self.function_timeout = function_timeout
        self.function_directory = function_directory
        workers = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
        self._executor = ThreadPoolExecutor(
            max_workers=int(workers) if workers.isdigit() and int(workers) > 0 else None,
            thread_name_prefix="devhost-fn",
        )
        self._threads_busy = 0
        self._lock = threading.Lock()

    @property
    def threads_busy(self) -> int:
        """Sync invocations still running in the pool (they cannot be cancelled)."""
        with self._lock:
            return self._threads_busy

    def new_invocation_id(self) -> str:
        return str(uuid.uuid4())

    def context(self, function_name: str, invocation_id: str, trace_parent: str = "") -> InvocationContext:
        return InvocationContext(function_name, invocation_id, self.function_directory, trace_parent)

    def _run_sync(self, function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            self._threads_busy += 1
        try:
            return function(**kwargs)
        finally:
            with self._lock:
                self._threads_busy -= 1

    async def _call(self, function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(function):
            return await function(**kwargs)
        loop = asyncio.get_running_loop()
        # Copy the context so contextvars set by the caller are visible.
        call = functools.partial(contextvars.copy_context().run, self._run_sync, function, kwargs)
        result = await loop.run_in_executor(self._executor, call)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def invoke(self, function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """Call the function, raising FunctionTimeoutError past functionTimeout."""
        if self.function_timeout is None:
            return await self._call(function, kwargs)
        deadline = asyncio.timeout(self.function_timeout)
        try:
            async with deadline:
                return await self._call(function, kwargs)
        except TimeoutError as exc:
            if not deadline.expired():
                raise  # the function's own TimeoutError, not ours
            raise FunctionTimeoutError(
                f"Timeout value of {self.function_timeout:g}s was exceeded by function"
            ) from exc

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def log_executing(function_name: str, invocation_id: str, reason: str) -> float:
    logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function_name, reason, invocation_id)
    return time.monotonic()


def log_executed(function_name: str, invocation_id: str, started: float, error: BaseException | None = None) -> None:
    duration_ms = round((time.monotonic() - started) * 1000)
    if error is None:
        logger.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%sms)", function_name, invocation_id, duration_ms
        )
        return
    logger.error(
        "Executed 'Functions.%s' (Failed, Id=%s, Duration=%sms)",
        function_name,
        invocation_id,
        duration_ms,
        exc_info=(type(error), error, error.__traceback__),
    )
