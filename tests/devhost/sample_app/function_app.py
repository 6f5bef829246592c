"""A tiny function app that exercises what devhost must support.

It is run by ``python -m devhost`` in a subprocess; the tests observe queue
invocations through the ``records`` endpoint because handlers and HTTP
functions share the host process.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response, StreamingResponse

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

RECORDS: dict[str, list[dict[str, Any]]] = {}
_lock = threading.Lock()
_concurrency = {"current": 0, "peak": 0}


def record(queue: str, **fields: Any) -> None:
    with _lock:
        RECORDS.setdefault(queue, []).append({"at": time.time(), **fields})


@app.route(route="hello", methods=["GET"])
async def hello(req: Request) -> Response:
    return JSONResponse(
        {
            "greeting": os.environ.get("SAMPLE_GREETING"),
            "override": os.environ.get("SAMPLE_OVERRIDE"),
            "query": dict(req.query_params),
        }
    )


@app.route(route="echo")
async def echo(req: Request) -> Response:
    body = await req.body()
    return JSONResponse({"method": req.method, "body": body.decode()})


@app.route(route="items/{id:int}", methods=["GET"])
async def item_by_id(req: Request) -> Response:
    return JSONResponse({"function": "item_by_id", "params": dict(req.path_params)})


@app.route(route="items/latest", methods=["GET"])
async def latest_item(req: Request) -> Response:
    return JSONResponse({"function": "latest_item", "params": dict(req.path_params)})


@app.route(route="files/{*rest}", methods=["GET"])
async def files(req: Request) -> Response:
    return JSONResponse({"params": dict(req.path_params)})


@app.route(route="stream", methods=["GET"])
async def stream(req: Request) -> StreamingResponse:
    tag = req.query_params.get("tag", "")
    count = int(req.query_params.get("chunks", "5"))

    async def chunks() -> AsyncIterator[bytes]:
        sent = 0
        try:
            for i in range(count):
                yield f"data: chunk {i}\n\n".encode()
                sent += 1
                await asyncio.sleep(0.3)
        finally:
            # Runs when the stream ends, including when the client went away.
            record("stream", tag=tag, sent=sent, completed=sent == count)

    return StreamingResponse(chunks(), media_type="text/event-stream")


@app.route(route="boom", methods=["GET", "POST"])
async def boom(req: Request) -> Response:
    raise RuntimeError("this handler always fails")


@app.route(route="slow", methods=["GET"])
async def slow(req: Request) -> Response:
    await asyncio.sleep(30)
    return JSONResponse({"finished": True})


@app.route(route="classic/{name}", methods=["GET", "POST"])
def classic(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        f"classic {req.route_params['name']} {req.method} {req.get_body().decode()}",
        status_code=201,
        headers={"x-sample": "yes"},
    )


@app.route(route="records", methods=["GET"])
async def records(req: Request) -> Response:
    with _lock:
        return JSONResponse({"records": RECORDS, "concurrency": dict(_concurrency)})


@app.queue_trigger(arg_name="msg", queue_name="ok-jobs", connection="AzureWebJobsStorage")
async def ok_worker(msg: func.QueueMessage) -> None:
    record("ok-jobs", id=msg.id, body=msg.get_body().decode(), dequeue_count=msg.dequeue_count)


@app.queue_trigger(arg_name="msg", queue_name="fail-jobs", connection="AzureWebJobsStorage")
async def failing_worker(msg: func.QueueMessage) -> None:
    record("fail-jobs", id=msg.id, body=msg.get_body().decode(), dequeue_count=msg.dequeue_count)
    raise RuntimeError("failing on purpose")


@app.queue_trigger(arg_name="msg", queue_name="slow-jobs", connection="AzureWebJobsStorage")
async def slow_worker(msg: func.QueueMessage) -> None:
    with _lock:
        _concurrency["current"] += 1
        _concurrency["peak"] = max(_concurrency["peak"], _concurrency["current"])
    try:
        await asyncio.sleep(0.5)
    finally:
        with _lock:
            _concurrency["current"] -= 1
    record("slow-jobs", id=msg.id)


@app.queue_trigger(arg_name="msg", queue_name="long-jobs", connection="AzureWebJobsStorage")
async def long_worker(msg: func.QueueMessage) -> None:
    record("long-jobs", event="start", id=msg.id, dequeue_count=msg.dequeue_count)
    await asyncio.sleep(2.5)
    record("long-jobs", event="done", id=msg.id, dequeue_count=msg.dequeue_count)


@app.queue_trigger(arg_name="text", queue_name="sync-jobs", connection="AzureWebJobsStorage")
def sync_worker(text: str) -> None:
    record("sync-jobs", body=text, thread=threading.current_thread().name)


@app.timer_trigger(arg_name="timer", schedule="*/2 * * * * *", run_on_startup=False)
async def every_two_seconds(timer: func.TimerRequest) -> None:
    record("timers", name="every_two_seconds", past_due=timer.past_due)


@app.timer_trigger(arg_name="timer", schedule="%SAMPLE_YEARLY_SCHEDULE%", run_on_startup=False)
def once_a_year(timer: func.TimerRequest, context: func.Context) -> None:
    record("timers", name="once_a_year", past_due=timer.past_due, function=context.function_name,
           thread=threading.current_thread().name)


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
async def at_startup(timer: func.TimerRequest) -> None:
    record("timers", name="at_startup")


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *")
async def failing_timer(timer: func.TimerRequest) -> None:
    record("timers", name="failing_timer")
    raise RuntimeError("failing on purpose")


@app.timer_trigger(arg_name="timer", schedule="0 */5 * * *")
async def five_field_cron(timer: func.TimerRequest) -> None:  # not NCRONTAB: skipped, with a warning
    record("timers", name="five_field_cron")
