"""Serve HTTP functions from a Starlette app.

The fastapi extension hands handlers Starlette's own Request and takes back
Starlette responses, so the local host can pass both through untouched and a
``StreamingResponse`` streams chunk by chunk exactly as on Azure. Handlers
written for the classic ``func.HttpRequest``/``func.HttpResponse`` types are
adapted (buffered), because that is all those types can do.

Function keys are not enforced: Core Tools does not enforce them when running
locally either. The authLevel is still reported by ``/admin/functions``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import azure.functions as func
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from devhost.discovery import FunctionIndex, HttpFunction
from devhost.host_check import HostCheck
from devhost.invocation import FunctionTimeoutError, Invoker, log_executed, log_executing
from devhost.routing import FunctionRoute, RouteTemplateError, compile_route, order_by_precedence

logger = logging.getLogger("devhost.http")

HTTP_REASON = "This function was programmatically called via the host APIs."


async def to_classic_request(request: Request) -> func.HttpRequest:
    """Buffer a Starlette request into the classic ``func.HttpRequest``."""
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=dict(request.headers),
        params=dict(request.query_params),
        route_params=dict(request.path_params),
        body=await request.body(),
    )


def _classic_response(result: func.HttpResponse) -> Response:
    body = result.get_body()
    headers = {k: v for k, v in result.headers.items() if k.lower() != "content-length"}
    if not any(k.lower() == "content-type" for k in headers):
        mimetype = result.mimetype or "text/plain"
        charset = result.charset or "utf-8"
        headers["content-type"] = f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype
    return Response(content=body, status_code=result.status_code, headers=headers)


def to_response(result: Any) -> Response:
    """Turn whatever a handler returned into a Starlette response."""
    if isinstance(result, Response):
        return result
    if isinstance(result, func.HttpResponse):
        return _classic_response(result)
    if result is None:
        return Response(status_code=204)
    if isinstance(result, str):
        return PlainTextResponse(result)
    if isinstance(result, bytes | bytearray):
        return Response(content=bytes(result), media_type="application/octet-stream")
    dump = getattr(result, "model_dump", None)
    if callable(dump):
        return JSONResponse(dump(mode="json"))
    if isinstance(result, dict | list | int | float | bool):
        return JSONResponse(result)
    raise TypeError(f"unsupported return type from HTTP function: {type(result).__name__}")


async def _with_deadline(body: AsyncIterable[Any], deadline: float, name: str) -> AsyncIterator[Any]:
    """Stop a streamed body that outlives functionTimeout (the host would abort it).

    The handler's generator is closed explicitly when the stream ends early
    (client gone, timeout), so whatever it holds open upstream is released now
    rather than whenever the garbage collector gets to it.
    """
    try:
        async for chunk in body:
            if time.monotonic() > deadline:
                raise FunctionTimeoutError(f"function {name} exceeded functionTimeout while streaming")
            yield chunk
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()


class FunctionEndpoint:
    """ASGI app that runs one HTTP function per request."""

    def __init__(self, function: HttpFunction, invoker: Invoker) -> None:
        self.function = function
        self.invoker = invoker

    async def _run(self, request: Request, invocation_id: str) -> Response:
        fn = self.function
        trigger_value: Any = await to_classic_request(request) if fn.classic else request
        kwargs: dict[str, Any] = {fn.arg_name: trigger_value}
        if fn.context_arg:
            kwargs[fn.context_arg] = self.invoker.context(
                fn.name, invocation_id, request.headers.get("traceparent", "")
            )
        return to_response(await self.invoker.invoke(fn.user_function, kwargs))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self.function.name
        request = Request(scope, receive, send)
        invocation_id = self.invoker.new_invocation_id()
        started = log_executing(name, invocation_id, HTTP_REASON)
        try:
            response = await self._run(request, invocation_id)
        except Exception as exc:  # the host answers 500 for any failed invocation
            log_executed(name, invocation_id, started, exc)
            await Response(status_code=500)(scope, receive, send)
            return
        timeout = self.invoker.function_timeout
        if timeout is not None and isinstance(response, StreamingResponse):
            response.body_iterator = _with_deadline(response.body_iterator, started + timeout, name)
        try:
            await response(scope, receive, send)
        except Exception as exc:
            # Headers are already out; all that is left is to drop the connection.
            log_executed(name, invocation_id, started, exc)
            raise
        log_executed(name, invocation_id, started)


def function_routes(index: FunctionIndex, route_prefix: str, invoker: Invoker) -> list[FunctionRoute]:
    """One route per HTTP function, in ASP.NET precedence order."""
    routes: list[FunctionRoute] = []
    for fn in index.http:
        try:
            compiled = compile_route(fn.route, route_prefix)
        except RouteTemplateError as exc:
            raise RouteTemplateError(f"function {fn.name}: route {fn.route!r}: {exc}") from exc
        routes.append(FunctionRoute(compiled, FunctionEndpoint(fn, invoker), methods=fn.methods, name=fn.name))
    return order_by_precedence(routes)


def function_metadata(index: FunctionIndex, route_prefix: str, base_url: str) -> list[dict[str, Any]]:
    """What ``/admin/functions`` reports, also used for the startup listing."""
    items: list[dict[str, Any]] = []
    for fn in index.http:
        path = compile_route(fn.route, route_prefix).path
        items.append(
            {
                "name": fn.name,
                "trigger": "httpTrigger",
                "route": fn.route,
                "methods": list(fn.methods) if fn.methods else None,
                "authLevel": fn.auth_level,
                "url": base_url + path,
            }
        )
    for q in index.queues:
        items.append({"name": q.name, "trigger": "queueTrigger", "queueName": q.queue_name, "connection": q.connection})
    for t in index.timers:
        items.append(
            {"name": t.name, "trigger": "timerTrigger", "schedule": t.schedule, "runOnStartup": t.run_on_startup}
        )
    return items


def build_app(
    index: FunctionIndex,
    route_prefix: str,
    invoker: Invoker,
    *,
    base_url: str,
    host_names: frozenset[str],
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
    status: Callable[[], Mapping[str, Any]] | None = None,
    run_function: Callable[[str], bool] | None = None,
) -> Starlette:
    """The ASGI app: function routes first, then the host's own endpoints.

    Every request must name one of ``host_names`` (:mod:`devhost.host_check`), checked before routing.

    ``run_function(name)`` starts a non-HTTP function on demand (``POST /admin/functions/{name}``,
    Core Tools' admin API; devhost runs timer functions this way) and says whether it knew it.
    """
    metadata = function_metadata(index, route_prefix, base_url)

    async def host_status(_: Request) -> Response:
        body = {"state": "Running", **(status() if status else {})}
        return JSONResponse(body)

    async def list_functions(_: Request) -> Response:
        return Response(json.dumps(metadata, indent=2), media_type="application/json")

    async def invoke_function(request: Request) -> Response:
        name = request.path_params["name"]
        if run_function is None or not run_function(name):
            return PlainTextResponse(f"no timer function named {name!r}\n", status_code=404)
        return Response(status_code=202)

    async def root(_: Request) -> Response:
        return PlainTextResponse("Your Functions app is up and running (devhost).\n")

    routes: list[BaseRoute] = [
        *function_routes(index, route_prefix, invoker),
        Route("/admin/host/status", host_status, methods=["GET"]),
        Route("/admin/functions", list_functions, methods=["GET"]),
        Route("/admin/functions/{name}", invoke_function, methods=["POST"]),
        Route("/", root, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(HostCheck, names=host_names)])

