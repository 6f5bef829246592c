"""The Batch API's engine against real Azurite and the real simulator, queue handlers called in this process.

Each test writes what the HTTP side would (the input file's blob and row, the batch row, the
``plan`` message) and then drives the same handler the queue trigger calls, so failure points
(duplicates, a throttled deployment part-way, a cancel, an expired window) can be placed exactly.
"""

from __future__ import annotations

import array
import asyncio
import base64
import json
import time
from typing import Any

import pytest

import tests.jobs.conftest as jobs_conftest
from shared.batch import files, planner, requests, worker
from shared.batch.view import batch_view
from shared.config import get_settings
from shared.context import RequestContext
from shared.errors import GatewayError
from shared.gateway import embeddings
from shared.jobs import enqueue, layout, messages, progress, proof
from shared.jobs.ids import new_batch_id, new_file_id
from shared.jobs.queue_trigger import handle_message
from shared.jobs.store import BATCH_KIND, CANCELLING, KIND_FIELD, QUEUED, RUNNING, now
from shared.ownership import get_owners
from tests.jobs.harness import Pipeline, expected_vectors

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="session")]

OWNER = "key:0123456789abcdef"
EMBEDDINGS, CHAT, RESPONSES = "/v1/embeddings", "/v1/chat/completions", "/v1/responses"


@pytest.fixture
def chat_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """The job pipeline's models plus a chat model (read by ``pipeline`` when it sets the environment)."""
    monkeypatch.setattr(jobs_conftest, "MODELS",
                        jobs_conftest.MODELS + ",gpt-4o-mini,chat=gpt-4o-mini,ghost=no-such-deployment")


@pytest.fixture
def engine(chat_models: None, pipeline: Pipeline) -> Pipeline:
    return pipeline


def embedding_line(i: int, value: Any, **extra: Any) -> dict[str, Any]:
    return {"custom_id": f"emb-{i}", "method": "POST", "url": EMBEDDINGS,
            "body": {"model": "text-embedding-3-small", "input": value, **extra}}


def chat_line(i: int, text: str | None = None) -> dict[str, Any]:
    return {"custom_id": f"chat-{i}", "method": "POST", "url": CHAT,
            "body": {"model": "chat", "messages": [{"role": "user", "content": text or f"line {i} says hello"}],
                     "max_tokens": 8}}


async def make_batch(p: Pipeline, lines: list[dict[str, Any]], *, expires_in: float = 3600.0,
                     **extra: Any) -> tuple[str, str]:
    """The input file and the batch row as ``POST /v1/files`` and ``POST /v1/batches`` write them."""
    rt = p.runtime
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    file_id = new_file_id()
    await rt.storage.blob.get_blob_client(rt.container, layout.file_blob(file_id)).upload_blob(data, overwrite=True)
    endpoint, model = lines[0]["url"], lines[0]["body"]["model"]
    await files.record_file(rt, file_id, owner=OWNER, purpose="batch", filename="input.jsonl", size=len(data),
                            lines=len(lines), blob=layout.file_blob(file_id), endpoint=endpoint, model=model)
    batch_id, token, created = new_batch_id(), proof.new_token(), now()
    await rt.store.create(batch_id, {
        KIND_FIELD: BATCH_KIND, "status": QUEUED, "owner": OWNER, "token": token, "source": "test",
        "endpoint": endpoint, "input_file_id": file_id, "model": model, "deployment": get_settings().models[model],
        "completion_window": "24h", "created_at": created, "expires_at": round(created + expires_in, 3),
        "total": len(lines), **extra})
    return batch_id, token


def step_message(batch_id: str, token: str, action: str = "plan") -> bytes:
    return json.dumps({"schema": messages.SCHEMA_VERSION, "type": "batch", "id": batch_id, "token": token,
                       "action": action}).encode()


async def put(p: Pipeline, body: bytes) -> None:
    await enqueue.put_message(p.runtime.queue, body.decode())


async def take_all(p: Pipeline) -> list[bytes]:
    """Every visible message on the jobs queue, removed from it (a test then delivers them by hand)."""
    taken: list[bytes] = []
    while True:
        batch = [m async for m in p.runtime.queue.receive_messages(max_messages=32, visibility_timeout=60)]
        if not batch:  # chunk messages in chunk order (they are enqueued concurrently)
            return sorted(taken, key=lambda body: int(json.loads(body).get("chunk", -1)))
        for message in batch:
            taken.append(base64.b64decode(message.content))
            await p.runtime.queue.delete_message(message)


async def deliver(body: bytes) -> None:
    await handle_message(body, "test-delivery", 1)


async def row(p: Pipeline, batch_id: str) -> dict[str, Any]:
    found = await p.runtime.store.get_row(batch_id)
    assert found is not None
    return found


async def run_until_ended(p: Pipeline, batch_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handled = await p.step()
        current = await row(p, batch_id)
        if current["status"] not in (QUEUED, RUNNING, CANCELLING) and not handled:
            return current
        if not handled:
            await asyncio.sleep(0.2)
    raise TimeoutError(f"batch {batch_id} did not end: {await row(p, batch_id)}")


async def file_lines(p: Pipeline, file_id: str | None) -> list[dict[str, Any]]:
    """A file's lines, read through its row (as ``GET /v1/files/{id}/content`` does)."""
    if file_id is None:
        return []
    entity = await p.runtime.store.table.get_entity(file_id, layout.FILE_ROW)
    assert entity["owner"] == OWNER and entity["purpose"] == "batch_output"
    data = await (await p.runtime.storage.blob.get_blob_client(p.runtime.container, entity["blob"])
                  .download_blob()).readall()
    assert int(getattr(entity["bytes"], "value", entity["bytes"])) == len(data)
    lines = [json.loads(line) for line in data.splitlines()]
    assert int(getattr(entity["lines"], "value", entity["lines"])) == len(lines)
    return lines


async def outputs(p: Pipeline, ended: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return await file_lines(p, ended.get("output_file_id")), await file_lines(p, ended.get("error_file_id"))


def floats(vector: Any) -> list[float]:
    if isinstance(vector, str):
        return array.array("f", base64.b64decode(vector)).tolist()
    return array.array("f", vector).tolist()


def sim_count(p: Pipeline, route: str) -> int:
    return int(p.simulator.stats()["counts"].get(route, 0))


def sim_status(p: Pipeline, status: int) -> int:
    return int(p.simulator.stats()["statuses"].get(str(status), 0))


async def test_ten_thousand_embedding_lines_cost_a_handful_of_calls(engine: Pipeline) -> None:
    texts = [f"batch line {i} about packing" for i in range(10_000)]
    batch_id, token = await make_batch(engine, [embedding_line(i, t, dimensions=16) for i, t in enumerate(texts)])
    await put(engine, step_message(batch_id, token))
    ended = await run_until_ended(engine, batch_id)
    calls = sim_count(engine, "embeddings")
    assert ended["status"] == "succeeded", ended
    assert calls <= 10 and calls == -(-10_000 // 2048), calls  # 2048 one-input lines per call
    output, errors = await outputs(engine, ended)
    assert errors == [] and ended.get("error_file_id") is None
    assert [line["custom_id"] for line in output] == [f"emb-{i}" for i in range(10_000)]
    expected = expected_vectors(texts, "text-embedding-3-small", 16)
    for line, vector in zip(output, expected, strict=True):
        assert line["error"] is None and line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "list" and body["usage"]["prompt_tokens"] > 0
        assert [d["index"] for d in body["data"]] == [0]
        assert floats(body["data"][0]["embedding"]) == vector
    assert len({line["id"] for line in output}) == 10_000
    assert all(line["id"].startswith("batch_req_") for line in output)
    state = await engine.runtime.store.load(batch_id)
    assert state is not None
    view = batch_view(batch_id, state)
    assert view["status"] == "completed"
    assert view["request_counts"] == {"total": 10_000, "completed": 10_000, "failed": 0}


async def test_mixed_dimensions_and_encodings_answer_like_the_synchronous_route(engine: Pipeline) -> None:
    lines = [
        embedding_line(0, "plain text"),
        embedding_line(1, ["two", "inputs"], dimensions=8, encoding_format="base64"),
        embedding_line(2, "small again", dimensions=8),
        embedding_line(3, ["x", "y", "z"], encoding_format="float", dimensions=32),
        embedding_line(4, "the default once more", encoding_format="base64"),
        embedding_line(5, "a field packing cannot keep", user="team-a", encoding_format="float"),  # sent as is
    ]
    batch_id, token = await make_batch(engine, lines)
    await put(engine, step_message(batch_id, token))
    ended = await run_until_ended(engine, batch_id)
    assert ended["status"] == "succeeded", ended
    assert sim_count(engine, "embeddings") == 4  # one call per dimensions value, and the line sent as is
    output, errors = await outputs(engine, ended)
    assert errors == [] and [line["custom_id"] for line in output] == [f"emb-{i}" for i in range(6)]
    for line, asked in zip(output, lines, strict=True):
        body = line["response"]["body"]
        sync = await embeddings(RequestContext.new(30), json.dumps(asked["body"]).encode())
        assert sync.status == 200
        wanted = json.loads(sync.body)
        base64_asked = asked["body"].get("encoding_format") == "base64"
        assert all(isinstance(d["embedding"], str) == base64_asked for d in body["data"])
        assert [floats(d["embedding"]) for d in body["data"]] == [floats(d["embedding"]) for d in wanted["data"]]
        assert {k: body[k] for k in ("object", "model")} == {k: wanted[k] for k in ("object", "model")}
        assert [d["index"] for d in body["data"]] == [d["index"] for d in wanted["data"]]


async def test_chat_lines_and_a_refused_line_land_in_their_files(engine: Pipeline) -> None:
    lines = [chat_line(i) for i in range(6)]
    lines[3] = chat_line(3, "please [[filter:prompt:hate]] refuse me")
    batch_id, token = await make_batch(engine, lines, output_expires_after=7200)
    await put(engine, step_message(batch_id, token))
    ended = await run_until_ended(engine, batch_id)
    assert ended["status"] == "succeeded", ended
    output, errors = await outputs(engine, ended)
    assert [line["custom_id"] for line in output] == ["chat-0", "chat-1", "chat-2", "chat-4", "chat-5"]
    for line in output:
        number = line["custom_id"].split("-")[1]
        body = line["response"]["body"]
        assert line["response"]["status_code"] == 200 and line["error"] is None
        assert body["object"] == "chat.completion" and f"line {number} says hello" in \
            body["choices"][0]["message"]["content"]
        assert line["response"]["request_id"]
    (refused,) = errors
    assert refused["custom_id"] == "chat-3" and refused["response"]["status_code"] == 400
    assert refused["response"]["body"]["error"]["code"] == "content_filter"
    assert ended["output_file_id"] != ended["error_file_id"]
    for file_id in (ended["output_file_id"], ended["error_file_id"]):  # output_expires_after honoured
        entity = await engine.runtime.store.table.get_entity(file_id, layout.FILE_ROW)
        assert entity["expires_at"] == pytest.approx(entity["created_at"] + 7200)
    assert int(getattr(ended["embedded"], "value", ended["embedded"])) == 5
    assert int(getattr(ended["failed"], "value", ended["failed"])) == 1


async def test_responses_lines_are_stored_for_the_batch_owner(engine: Pipeline) -> None:
    lines = [{"custom_id": f"r-{i}", "method": "POST", "url": RESPONSES,
              "body": {"model": "gpt-4o-mini", "input": f"response line {i}", "max_output_tokens": 16,
                       **({"store": False} if i == 2 else {})}} for i in range(3)]
    batch_id, token = await make_batch(engine, lines)
    await put(engine, step_message(batch_id, token))
    ended = await run_until_ended(engine, batch_id)
    output, errors = await outputs(engine, ended)
    assert errors == [] and [line["custom_id"] for line in output] == ["r-0", "r-1", "r-2"]
    owners = get_owners()
    for line in output[:2]:
        await owners.require(OWNER, line["response"]["body"]["id"])
        with pytest.raises(GatewayError):
            await owners.require("key:fedcba9876543210", line["response"]["body"]["id"])


async def test_duplicated_plan_and_chunk_messages_give_each_line_once(engine: Pipeline,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner, "CHAT_CHUNK_LINES", 4)
    lines = [chat_line(i) for i in range(10)]
    batch_id, token = await make_batch(engine, lines)
    plan = step_message(batch_id, token)
    await deliver(plan)
    await deliver(plan)  # a redelivered plan message
    chunks = await take_all(engine)
    assert len(chunks) == 3  # 4 + 4 + 2 lines, not six messages
    for body in chunks:
        await deliver(body)
    for body in chunks:  # each delivered again after it finished
        await deliver(body)
    for body in chunks:  # and again, all at once, through the queue
        await put(engine, body)
        await put(engine, body)
    ended = await run_until_ended(engine, batch_id)
    assert ended["status"] == "succeeded", ended
    output, errors = await outputs(engine, ended)
    assert errors == [] and [line["custom_id"] for line in output] == [f"chat-{i}" for i in range(10)]
    assert sim_count(engine, "chat/completions") == 10  # a finished chunk is never sent again


async def test_a_throttled_chunk_keeps_its_finished_lines_and_sends_only_the_rest(engine: Pipeline) -> None:
    # 4 requests per 8 s window: the fifth line is refused with a retry-after beyond what a call may wait.
    engine.simulator.configure(rpm=30, rpm_window_s=8)
    lines = [chat_line(i) for i in range(12)]
    batch_id, token = await make_batch(engine, lines)
    await deliver(step_message(batch_id, token))
    (chunk,) = await take_all(engine)
    await deliver(chunk)  # throttled part-way: handed back (a delayed copy on the queue), progress kept
    kept = await progress.load(engine.runtime, batch_id, 0)
    assert len(kept.vectors) == 4, sorted(kept.vectors)
    assert not await engine.runtime.store.chunk_done(batch_id, 0)
    assert sim_status(engine, 200) == 4 and sim_status(engine, 429) >= 1
    engine.simulator.configure(rpm=0)
    time.sleep(8.5)  # the pacer and the backend pool still remember the 429's retry-after
    await deliver(chunk)
    ended = await run_until_ended(engine, batch_id)
    assert ended["status"] == "succeeded", ended
    output, errors = await outputs(engine, ended)
    assert errors == [] and [line["custom_id"] for line in output] == [f"chat-{i}" for i in range(12)]
    assert sim_status(engine, 200) == 12  # every line answered once: the kept four were not sent again


async def test_cancelled_while_handed_back_the_lines_it_kept_are_in_the_output(engine: Pipeline) -> None:
    engine.simulator.configure(rpm=30, rpm_window_s=8)  # 4 lines pass, then a long 429
    batch_id, token = await make_batch(engine, [chat_line(i) for i in range(7)])
    await deliver(step_message(batch_id, token))
    (chunk,) = await take_all(engine)
    await deliver(chunk)
    assert len((await progress.load(engine.runtime, batch_id, 0)).vectors) == 4
    assert await engine.runtime.store.transition(batch_id, {"status": CANCELLING, "cancelling_at": now()},
                                                 only_from=frozenset({RUNNING}))
    await deliver(step_message(batch_id, token, "close"))
    ended = await row(engine, batch_id)
    assert ended["status"] == "cancelled"
    output, errors = await outputs(engine, ended)
    kept = sorted(line["custom_id"] for line in output)
    assert len(kept) == 4 and all(line["response"]["status_code"] == 200 for line in output)
    assert sorted(kept + [line["custom_id"] for line in errors]) == sorted(f"chat-{i}" for i in range(7))
    assert all(line["error"]["code"] == "batch_cancelled" for line in errors)
    for body in await take_all(engine):  # the handed-back chunk comes back: it starts nothing
        await deliver(body)
    assert sim_status(engine, 200) == 4


async def test_cancel_mid_way_keeps_finished_lines_and_cancels_the_rest(engine: Pipeline,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner, "CHAT_CHUNK_LINES", 3)
    lines = [chat_line(i) for i in range(9)]
    batch_id, token = await make_batch(engine, lines)
    await deliver(step_message(batch_id, token))
    first, *rest = await take_all(engine)
    await deliver(first)
    state = await engine.runtime.store.load(batch_id)
    assert state is not None
    counts = batch_view(batch_id, state)
    assert counts["status"] == "in_progress"
    assert counts["request_counts"] == {"total": 9, "completed": 3, "failed": 0}
    # What POST /v1/batches/{id}/cancel does: the row to cancelling, then a close message.
    assert await engine.runtime.store.transition(batch_id, {"status": CANCELLING, "cancelling_at": now()},
                                                 only_from=frozenset({QUEUED, RUNNING}))
    for body in rest:
        await deliver(body)  # no new chunk starts
    assert sim_count(engine, "chat/completions") == 3
    await deliver(step_message(batch_id, token, "close"))
    ended = await row(engine, batch_id)
    assert ended["status"] == "cancelled" and ended["cancelled_at"] and ended["completed_at"]
    output, errors = await outputs(engine, ended)
    assert [line["custom_id"] for line in output] == ["chat-0", "chat-1", "chat-2"]
    assert [line["custom_id"] for line in errors] == [f"chat-{i}" for i in range(3, 9)]
    assert all(line["response"] is None and line["error"]["code"] == "batch_cancelled" for line in errors)
    state = await engine.runtime.store.load(batch_id)
    assert state is not None and batch_view(batch_id, state)["status"] == "cancelled"
    await deliver(step_message(batch_id, token, "close"))  # a second close changes nothing
    assert (await row(engine, batch_id))["cancelled_at"] == ended["cancelled_at"]


async def test_a_batch_cancelled_before_it_was_planned_accounts_for_every_line(engine: Pipeline) -> None:
    batch_id, token = await make_batch(engine, [chat_line(i) for i in range(5)])
    # Cancelled while still validating: the plan message has not been handled yet.
    assert await engine.runtime.store.transition(batch_id, {"status": CANCELLING, "cancelling_at": now()},
                                                 only_from=frozenset({QUEUED, RUNNING}))
    await deliver(step_message(batch_id, token, "close"))
    await deliver(step_message(batch_id, token))  # the late plan message starts nothing
    ended = await row(engine, batch_id)
    assert ended["status"] == "cancelled" and ended.get("output_file_id") is None
    output, errors = await outputs(engine, ended)
    assert output == [] and [(line["custom_id"], line["error"]["code"]) for line in errors] == [
        (f"chat-{i}", "batch_cancelled") for i in range(5)]
    state = await engine.runtime.store.load(batch_id)
    assert state is not None and batch_view(batch_id, state)["request_counts"] == {
        "total": 5, "completed": 0, "failed": 5}
    assert sim_count(engine, "chat/completions") == 0


async def test_a_chunk_past_the_window_expires_the_batch(engine: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner, "CHAT_CHUNK_LINES", 2)
    batch_id, token = await make_batch(engine, [chat_line(i) for i in range(4)], expires_in=3.0)
    await deliver(step_message(batch_id, token))
    first, second = await take_all(engine)
    await deliver(first)
    time.sleep(max(0.0, float((await row(engine, batch_id))["expires_at"]) - time.time() + 0.2))
    await deliver(second)
    ended = await row(engine, batch_id)
    assert ended["status"] == "expired" and ended["expired_at"]
    output, errors = await outputs(engine, ended)
    assert [line["custom_id"] for line in output] == ["chat-0", "chat-1"]
    assert [(line["custom_id"], line["error"]["code"]) for line in errors] == [
        ("chat-2", "batch_expired"), ("chat-3", "batch_expired")]
    assert sim_count(engine, "chat/completions") == 2


async def test_a_close_before_the_window_ends_leaves_a_running_batch_alone(engine: Pipeline) -> None:
    batch_id, token = await make_batch(engine, [chat_line(0)])
    await deliver(step_message(batch_id, token))
    await deliver(step_message(batch_id, token, "close"))
    assert (await row(engine, batch_id))["status"] == RUNNING
    ended = await run_until_ended(engine, batch_id)
    assert ended["status"] == "succeeded"


async def test_a_line_that_fails_at_planning_fails_the_batch_with_errors(engine: Pipeline,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    batch_id, token = await make_batch(engine, [chat_line(0), chat_line(1)])
    monkeypatch.setenv("OPENAI_MODELS", "text-embedding-3-small")  # the chat model left the allowlist since
    getattr(get_settings, "cache_clear")()  # noqa: B009 - process_wide hides it from the type
    await deliver(step_message(batch_id, token))
    ended = await row(engine, batch_id)
    assert ended["status"] == "failed" and ended["failed_at"]
    (error,) = json.loads(ended["errors"])
    assert error["code"] == "model_not_found" and error["line"] == 1
    assert await take_all(engine) == []


async def test_a_deleted_input_file_fails_the_batch_clearly(engine: Pipeline) -> None:
    batch_id, token = await make_batch(engine, [chat_line(0)])
    file_id = (await row(engine, batch_id))["input_file_id"]
    await engine.runtime.storage.blob.get_blob_client(engine.runtime.container, layout.file_blob(file_id)).delete_blob()
    await deliver(step_message(batch_id, token))
    ended = await row(engine, batch_id)
    assert ended["status"] == "failed" and ended["error_code"] == "file_not_found"
    assert file_id in json.loads(ended["errors"])[0]["message"]


async def test_a_batch_message_with_the_wrong_token_leaves_the_batch_alone(engine: Pipeline) -> None:
    batch_id, _ = await make_batch(engine, [chat_line(0)])
    await deliver(step_message(batch_id, proof.new_token()))
    await deliver(step_message(batch_id, proof.new_token(), "close"))
    assert (await row(engine, batch_id))["status"] == QUEUED
    assert await take_all(engine) == []
    assert len([m async for m in engine.runtime.poison_queue.receive_messages(max_messages=32)]) == 2


async def test_a_deployment_that_does_not_exist_fails_the_batch_with_every_line_accounted_for(
        engine: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner, "CHAT_CHUNK_LINES", 2)
    lines = [chat_line(i) for i in range(3)]
    for line in lines:
        line["body"]["model"] = "ghost"
    batch_id, token = await make_batch(engine, lines)
    await put(engine, step_message(batch_id, token))
    ended = await run_until_ended(engine, batch_id)
    assert ended["status"] == "failed" and ended["error_code"] == "DeploymentNotFound" and ended["failed_at"]
    output, errors = await outputs(engine, ended)
    assert output == [] and ended.get("output_file_id") is None
    assert [line["custom_id"] for line in errors] == ["chat-0", "chat-1", "chat-2"]
    assert {line["error"]["code"] for line in errors} == {"batch_failed"}


async def test_a_refused_dimensions_value_fails_only_the_lines_that_ask_for_it(engine: Pipeline) -> None:
    lines = [embedding_line(0, "fine"), embedding_line(1, "too wide", dimensions=4096),
             embedding_line(2, ["also", "too wide"], dimensions=4096, encoding_format="base64"),
             embedding_line(3, "narrow", dimensions=8)]
    batch_id, token = await make_batch(engine, lines)
    await put(engine, step_message(batch_id, token))
    ended = await run_until_ended(engine, batch_id)
    assert ended["status"] == "succeeded", ended
    output, errors = await outputs(engine, ended)
    assert [line["custom_id"] for line in output] == ["emb-0", "emb-3"]
    assert [line["custom_id"] for line in errors] == ["emb-1", "emb-2"]
    for line in errors:
        assert line["error"] is None and line["response"]["status_code"] == 400
        assert line["response"]["body"]["error"]["param"] == "dimensions"
    # the group's verdict is learnt from one line, not paid for line by line
    assert sim_count(engine, "embeddings") <= 4


async def test_a_chunk_hands_back_the_lines_it_had_no_turn_for(engine: Pipeline,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "START_LINES_FOR_SECONDS", 0.3)
    engine.simulator.configure(ttft_ms=600)  # each answer takes longer than the chunk's turn
    batch_id, token = await make_batch(engine, [chat_line(i) for i in range(requests.LINES_AT_ONCE + 3)])
    await deliver(step_message(batch_id, token))
    (chunk,) = await take_all(engine)
    await deliver(chunk)  # the first lines run; the rest did not start in time and go back at once
    assert len((await progress.load(engine.runtime, batch_id, 0)).vectors) == requests.LINES_AT_ONCE
    time.sleep(1.2)  # back on the queue within a second (visibility delays are whole seconds)
    (again,) = await take_all(engine)
    assert json.loads(again)["chunk"] == 0
    await deliver(again)
    ended = await row(engine, batch_id)
    assert ended["status"] == "succeeded", ended
    output, _ = await outputs(engine, ended)
    assert [line["custom_id"] for line in output] == [f"chat-{i}" for i in range(requests.LINES_AT_ONCE + 3)]
    assert sim_status(engine, 200) == requests.LINES_AT_ONCE + 3


async def test_a_running_chunk_saves_its_finished_lines_for_a_host_that_dies(engine: Pipeline,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(requests, "LINES_AT_ONCE", 2)
    engine.simulator.configure(ttft_ms=300)
    batch_id, token = await make_batch(engine, [chat_line(i) for i in range(8)])
    await deliver(step_message(batch_id, token))
    (chunk,) = await take_all(engine)
    running = asyncio.create_task(deliver(chunk))
    deadline = time.monotonic() + 10
    saved = 0
    while saved < 2 and time.monotonic() < deadline:  # while the chunk still runs, its first lines are saved
        await asyncio.sleep(0.05)
        saved = len((await progress.load(engine.runtime, batch_id, 0)).vectors)
    assert 2 <= saved < 8 and not running.done()
    await running
    ended = await row(engine, batch_id)
    assert ended["status"] == "succeeded"
    output, _ = await outputs(engine, ended)
    assert [line["custom_id"] for line in output] == [f"chat-{i}" for i in range(8)]


async def test_an_outage_part_way_keeps_the_finished_lines_and_retries_the_rest(
        engine: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requests, "LINES_AT_ONCE", 1)  # one line after the other, so the outage hits line 2
    # Two answers pass, then every attempt of the third line (RETRY_MAX_ATTEMPTS=3) gets a 500.
    engine.simulator.fault({"faults": [{"kind": "slow_first_byte", "path": "chat/completions", "ms": 0, "count": 2},
                                       {"kind": "status", "path": "chat/completions", "status": 500, "count": 3}]})
    batch_id, token = await make_batch(engine, [chat_line(i) for i in range(5)])
    await deliver(step_message(batch_id, token))
    (chunk,) = await take_all(engine)
    await deliver(chunk)  # a passing failure: scheduled again with a backoff, the two answers kept
    assert len((await progress.load(engine.runtime, batch_id, 0)).vectors) == 2
    current = await row(engine, batch_id)
    assert current["status"] == RUNNING and "500" in current["last_error"]
    await deliver(chunk)  # the retry (delivered now rather than after the backoff)
    ended = await row(engine, batch_id)
    assert ended["status"] == "succeeded", ended
    output, errors = await outputs(engine, ended)
    assert errors == [] and [line["custom_id"] for line in output] == [f"chat-{i}" for i in range(5)]
    assert sim_status(engine, 200) == 5 and sim_status(engine, 500) == 3
