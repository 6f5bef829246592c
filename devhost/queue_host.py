"""Wire queue-triggered functions to queue listeners for the life of the host.

Resolves each function's connection, shares one service client per
connection, adapts ``func.QueueMessage`` to what the function asks for
(``QueueMessage``, ``str`` or ``bytes``) and logs invocations like Core Tools.
A function whose connection is not configured is reported and skipped, so
HTTP functions keep working, which is also what the real host does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from devhost.connections import ConnectionNotConfigured, queue_service_client, resolve_connection
from devhost.discovery import QueueFunction
from devhost.hostjson import QueueOptions
from devhost.invocation import Invoker, log_executed, log_executing
from devhost.queues import DEFAULT_LEASE_SECONDS, QueueHandler, QueueListener

logger = logging.getLogger("devhost.queues")

LEASE_ENV = "DEVHOST_QUEUE_LEASE_SECONDS"
GRACE_ENV = "DEVHOST_SHUTDOWN_GRACE_SECONDS"


def _float_env(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        logger.warning("ignoring %s=%r (not a number)", name, raw)
        return default


def make_handler(fn: QueueFunction, invoker: Invoker) -> QueueHandler:
    """The callable a listener runs per message: convert, invoke, log."""

    async def handle(message: func.QueueMessage) -> None:
        invocation_id = invoker.new_invocation_id()
        started = log_executing(fn.name, invocation_id, f"New queue message detected on '{fn.queue_name}'.")
        value: Any = message
        if fn.arg_kind == "str":
            value = message.get_body().decode("utf-8")
        elif fn.arg_kind == "bytes":
            value = message.get_body()
        kwargs: dict[str, Any] = {fn.arg_name: value}
        if fn.context_arg:
            kwargs[fn.context_arg] = invoker.context(fn.name, invocation_id)
        try:
            await invoker.invoke(fn.user_function, kwargs)
        except Exception as exc:
            log_executed(fn.name, invocation_id, started, exc)
            raise
        log_executed(fn.name, invocation_id, started)

    return handle


class QueueHost:
    """Starts one listener per queue function and stops them all on shutdown."""

    def __init__(
        self,
        functions: list[QueueFunction],
        options: QueueOptions,
        invoker: Invoker,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.functions = functions
        self.options = options
        self.invoker = invoker
        self.environ = os.environ if environ is None else environ
        self.lease_seconds = int(_float_env(self.environ, LEASE_ENV, DEFAULT_LEASE_SECONDS))
        self.shutdown_grace = _float_env(self.environ, GRACE_ENV, 2.0)
        self.listeners: list[QueueListener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: dict[str, Any] = {}
        self._credentials: list[Any] = []

    def _service_client(self, connection: str) -> Any:
        resolved = resolve_connection(connection, self.environ)
        if resolved.name not in self._clients:
            # Storage's default retry waits 15 s before its first retry; the
            # listener has its own backoff, so keep the SDK's retries short.
            client, credential = queue_service_client(
                resolved, initial_backoff=1, increment_base=2, retry_total=2, random_jitter_range=0
            )
            self._clients[resolved.name] = client
            if credential is not None:
                self._credentials.append(credential)
        return self._clients[resolved.name]

    def start(self) -> None:
        for fn in self.functions:
            try:
                service = self._service_client(fn.connection)
            except ConnectionNotConfigured as exc:
                logger.error("function %s is disabled: %s", fn.name, exc)
                continue
            listener = QueueListener(
                function_name=fn.name,
                queue=service.get_queue_client(fn.queue_name),
                poison_queue=service.get_queue_client(f"{fn.queue_name}-poison"),
                options=self.options,
                handler=make_handler(fn, self.invoker),
                lease_seconds=self.lease_seconds,
                shutdown_grace=self.shutdown_grace,
            )
            self.listeners.append(listener)
            self._tasks.append(asyncio.create_task(listener.run(), name=f"queue-listener:{fn.name}"))

    def status(self) -> dict[str, Any]:
        return {
            "queues": {
                listener.function_name: {"inFlight": listener.in_flight, "polls": listener.polls}
                for listener in self.listeners
            }
        }

    async def stop(self) -> None:
        for listener in self.listeners:
            listener.stop()
        if self._tasks:
            # Listeners drain within their grace period; the margin covers the
            # storage calls that make abandoned messages visible again.
            _, pending = await asyncio.wait(self._tasks, timeout=self.shutdown_grace + 5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        for credential in self._credentials:
            with contextlib.suppress(Exception):
                await credential.close()
