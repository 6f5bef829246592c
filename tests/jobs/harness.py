"""Helpers for the job tests: a minimal in-process queue host, and result checking.

``Pipeline`` plays the Functions host's part for the in-process tests: it receives messages from
the real (Azurite) queue, hands the decoded body to the same handlers the queue triggers call, and
settles them like the host (delete on success; on failure visible again, or moved to the poison
queue after ``max_dequeue`` deliveries).
"""

from __future__ import annotations

import array
import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from shared.context import RequestContext
from shared.jobs import service
from shared.jobs.poison import handle_poison
from shared.jobs.queue_trigger import handle_message
from shared.jobs.runtime import Runtime, get_runtime

Handler = Callable[[bytes, str, int], Awaitable[None]]
SIMULATOR_URL: dict[str, str] = {}


def expected_vectors(texts: list[str], deployment: str, dims: int) -> list[list[float]]:
    """What the simulator's synchronous /embeddings returns for ``texts`` (it is deterministic)."""
    out: list[list[float]] = []
    with httpx.Client(base_url=SIMULATOR_URL["url"], timeout=60, headers={"api-key": "test"}) as http:
        for start in range(0, len(texts), 2048):
            response = http.post("/openai/v1/embeddings", json={
                "model": deployment, "input": texts[start:start + 2048], "dimensions": dims,
                "encoding_format": "base64"})
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda d: d["index"])
            out.extend(array.array("f", base64.b64decode(d["embedding"])).tolist() for d in data)
    return out


def check_results(lines: list[dict[str, Any]], inputs: list[Any], *, deployment: str = "text-embedding-3-small",
                  dims: int = 1536, failed: dict[int, str] | None = None) -> None:
    """Every input exactly once, in order, with the simulator's vector (or the expected error code)."""
    failed = failed or {}
    wanted = [i for i in range(len(inputs)) if i not in failed]
    texts = [v if isinstance(v, str) else v["text"] for v in inputs]
    expected = dict(zip(wanted, expected_vectors([texts[i] for i in wanted], deployment, dims), strict=True))
    assert [line["index"] for line in lines] == list(range(len(inputs))), "results out of order or duplicated"
    for line, value in zip(lines, inputs, strict=True):
        text = value if isinstance(value, str) else value["text"]
        if isinstance(value, dict):
            assert line["id"] == value["id"]
        else:
            assert "id" not in line
        if line["index"] in failed:
            assert line["error"]["code"] == failed[line["index"]], line
            assert "embedding" not in line
            continue
        assert "error" not in line, line
        assert text and array.array("f", line["embedding"]).tolist() == expected[line["index"]]


def wait_for_job_end(http: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job as ``GET /api/v1/embeddings/jobs/{id}`` shows it once it succeeded or failed.

    Polled over ``http`` (the caller's client on the running host); an answer other than 200 is
    waited out like a running job (storage restarting), and named in the error if the time runs out.
    """
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(f"/api/v1/embeddings/jobs/{job_id}")
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            if body["status"] in ("succeeded", "failed"):
                return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} not done: {response.status_code} {response.text}")
        time.sleep(0.25)


class Pipeline:
    def __init__(self, azurite: Any, simulator: Any) -> None:
        self.azurite = azurite
        self.simulator = simulator
        SIMULATOR_URL["url"] = simulator.url
        self.rt: Runtime | None = None
        self.handler: Handler = handle_message
        self.max_dequeue = 5
        self.poisoned: list[bytes] = []

    async def open(self) -> None:
        self.rt = await get_runtime()

    async def close(self) -> None:
        if self.rt is not None:
            await self.rt.storage.close()

    @property
    def runtime(self) -> Runtime:
        assert self.rt is not None
        return self.rt

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = await service.submit(RequestContext.new(30), json.dumps(body).encode())
        assert reply.status == 202, reply.body
        return json.loads(reply.body)  # type: ignore[no-any-return]

    async def status(self, job_id: str) -> dict[str, Any]:
        reply = await service.status(RequestContext.new(30), job_id)
        return json.loads(reply.body)  # type: ignore[no-any-return]

    async def results(self, job_id: str, **query: Any) -> list[dict[str, Any]]:
        reply = await service.results(RequestContext.new(30), job_id, query)
        assert reply.events is not None
        data = b"".join([piece async for piece in reply.events])
        return [json.loads(line) for line in data.splitlines()]

    async def _settle(self, queue: Any, message: Any, handler: Handler, *, poison: bool) -> None:
        body = base64.b64decode(message.content)
        try:
            await handler(body, message.id, message.dequeue_count)
        except Exception:
            if poison and message.dequeue_count >= self.max_dequeue:
                await self.runtime.poison_queue.send_message(message.content)
                await queue.delete_message(message)
            else:
                await queue.update_message(message, visibility_timeout=0)
            return
        await queue.delete_message(message)

    async def step(self, concurrency: int = 16) -> int:
        """Run one batch from the jobs queue and one from the poison queue; returns messages handled."""
        handled = 0
        sem = asyncio.Semaphore(concurrency)
        for queue, handler, poison in ((self.runtime.queue, self.handler, True),
                                       (self.runtime.poison_queue, _poison_handler(self), False)):
            batch = [m async for m in queue.receive_messages(max_messages=32, visibility_timeout=60)]

            async def one(message: Any, queue: Any = queue, handler: Handler = handler, poison: bool = poison) -> None:
                async with sem:
                    await self._settle(queue, message, handler, poison=poison)

            await asyncio.gather(*(one(m) for m in batch))
            handled += len(batch)
        return handled

    async def run_until_done(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            handled = await self.step()
            status = await self.status(job_id)
            if status["status"] in ("succeeded", "failed") and not handled:
                return status
            if not handled:
                await asyncio.sleep(0.2)
        raise TimeoutError(f"job {job_id} did not finish: {await self.status(job_id)}")

    async def queued_messages(self) -> list[dict[str, Any]]:
        """Visible messages on the jobs queue, decoded (peeked, left in place)."""
        peeked = await self.runtime.queue.peek_messages(max_messages=32)
        return [json.loads(base64.b64decode(m.content)) for m in peeked]


def _poison_handler(pipeline: Pipeline) -> Handler:
    async def handle(body: bytes, message_id: str, dequeue_count: int) -> None:
        pipeline.poisoned.append(body)
        await handle_poison(body, message_id)

    return handle
