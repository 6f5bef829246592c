"""The ``/v1/batches`` routes on the running local host (issue #15): the official SDK, and a hostile caller.

One stack (host + simulator + Azurite as real processes) serves the module. Each test names its
own callers (fresh function keys), so lists and ownership are judged per test. Files are uploaded
through ``POST /v1/files`` as a caller would; a file row is written straight to the table only for
states an upload cannot produce (an expired file, a model the allowlist has since dropped, a
batch's output file).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest
from azure.data.tables import TableClient, UpdateMode

from devhost.stack import Stack
from shared.callers import identify
from tests.jobs.harness import Pipeline
from tests.security.conftest import Sim, start_stack

if TYPE_CHECKING:
    from shared.context import RequestContext

pytestmark = pytest.mark.timeout(180)

TABLE = "embeddingjobs"
MISSING_BATCH = "batch_" + "0" * 32
MISSING_FILE = "file-" + "0" * 32


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[Stack, Sim]]:
    with start_stack() as started:
        yield started


@pytest.fixture
def stack(running: tuple[Stack, Sim]) -> Iterator[Stack]:
    running[1].reset()
    yield running[0]
    running[1].reset()


@pytest.fixture
def sim(running: tuple[Stack, Sim], stack: Stack) -> Sim:
    return running[1]


def new_key() -> str:
    return f"key-{secrets.token_hex(6)}"


def sdk(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.host_url}/api/v1", api_key="unused", max_retries=0,
                         default_headers={"x-functions-key": key})


def raw(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{stack.host_url}/api/v1", headers={"x-functions-key": key}, timeout=30)


def table(stack: Stack) -> TableClient:
    assert stack.storage_connection_string
    return TableClient.from_connection_string(stack.storage_connection_string, table_name=TABLE)


def embedding_lines(count: int, model: str = "embed") -> bytes:
    return b"".join(json.dumps({"custom_id": f"e-{n}", "method": "POST", "url": "/v1/embeddings",
                                "body": {"model": model, "input": f"text {n}"}}).encode() + b"\n"
                    for n in range(count))


def chat_lines(count: int, model: str = "chat") -> bytes:
    return b"".join(json.dumps({"custom_id": f"c-{n}", "method": "POST", "url": "/v1/chat/completions",
                                "body": {"model": model, "max_tokens": 5,
                                         "messages": [{"role": "user", "content": f"hello {n}"}]}}).encode() + b"\n"
                    for n in range(count))


def upload(client: openai.OpenAI, content: bytes) -> str:
    return client.files.create(file=("requests.jsonl", content, "application/jsonl"), purpose="batch").id


def plant_file(stack: Stack, key: str, **fields: Any) -> str:
    """A file row in a state no upload produces (see the module docstring)."""
    file_id = "file-" + secrets.token_hex(16)
    row = {"PartitionKey": file_id, "RowKey": "file", "owner": identify({"x-functions-key": key}),
           "purpose": "batch", "filename": "planted.jsonl", "bytes": 10, "created_at": time.time(),
           "blob": f"files/{file_id}.jsonl", "lines": 1, "endpoint": "/v1/chat/completions", "model": "chat",
           **fields}
    with table(stack) as client:
        client.create_entity(row)
    return file_id


def create(client: openai.OpenAI, file_id: str, endpoint: str = "/v1/embeddings", **extra: Any) -> Any:
    return client.batches.create(input_file_id=file_id, endpoint=endpoint,  # type: ignore[arg-type]
                                 completion_window="24h", **extra)


def error_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["error"]  # type: ignore[no-any-return]


def test_a_batch_is_created_read_listed_and_cancelled_with_the_sdk(stack: Stack, sim: Sim) -> None:
    sim.configure(ttft_ms=30_000)  # its lines stay in flight: the batch cannot finish before the cancel
    alice = sdk(stack, new_key())
    file_id = upload(alice, chat_lines(3))
    before = time.time()
    batch = create(alice, file_id, "/v1/chat/completions", metadata={"team": "search"})

    assert batch.id.startswith("batch_") and batch.object == "batch" and batch.status == "validating"
    assert (batch.endpoint, batch.input_file_id, batch.completion_window) == \
        ("/v1/chat/completions", file_id, "24h")
    assert batch.model == "chat" and batch.metadata == {"team": "search"}
    assert batch.request_counts is not None and batch.request_counts.model_dump() == \
        {"total": 3, "completed": 0, "failed": 0}
    assert abs(batch.created_at - before) < 30 and batch.expires_at == batch.created_at + 86400
    assert batch.usage is not None and batch.usage.total_tokens == 0
    assert batch.errors is None and batch.output_file_id is None and batch.cancelled_at is None

    read = alice.batches.retrieve(batch.id)
    assert read.id == batch.id and read.status in ("validating", "in_progress")
    assert read.created_at == batch.created_at and read.metadata == {"team": "search"}
    assert alice.batches.list().data[0].id == batch.id

    cancelling = alice.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert cancelling.cancelling_at >= batch.created_at
    again = alice.batches.cancel(batch.id)  # asking twice answers the batch again
    assert again.id == batch.id and again.status in ("cancelling", "cancelled")
    assert alice.batches.retrieve(batch.id).status in ("cancelling", "cancelled")


def test_the_list_is_the_callers_own_batches_newest_first_in_pages(stack: Stack) -> None:
    alice_key, bob_key = new_key(), new_key()
    alice, bob = sdk(stack, alice_key), sdk(stack, bob_key)
    file_id = upload(alice, embedding_lines(1))
    made = [create(alice, file_id).id for _ in range(3)]
    theirs = create(bob, upload(bob, embedding_lines(1))).id

    first = alice.batches.list(limit=2)
    assert [b.id for b in first.data] == made[::-1][:2] and first.has_more
    assert [b.id for b in alice.batches.list(limit=2)] == made[::-1]  # the SDK follows ``after`` to the end
    assert [b.id for b in bob.batches.list()] == [theirs]

    with raw(stack, alice_key) as http:
        page = http.get("/batches", params={"limit": 2, "after": made[1]}).json()
        assert [b["id"] for b in page["data"]] == [made[0]] and page["has_more"] is False
        assert (page["first_id"], page["last_id"]) == (made[0], made[0])
        foreign = http.get("/batches", params={"after": theirs})
        missing = http.get("/batches", params={"after": MISSING_BATCH})
        assert foreign.status_code == missing.status_code == 400
        assert error_of(foreign)["code"] == "invalid_query_parameter"
        assert error_of(foreign) == error_of(missing)  # nothing tells bob's id from one that never existed
        for limit in ("0", "101", "x"):
            assert http.get("/batches", params={"limit": limit}).status_code == 400
        # Batches live in the embedding-job table: that list must not show them.
        jobs = http.get("/embeddings/jobs").json()["data"]
        assert not {job["id"] for job in jobs} & set(made)


def test_another_callers_batch_looks_exactly_like_a_missing_one(stack: Stack, sim: Sim) -> None:
    sim.configure(ttft_ms=30_000)
    alice_key, bob_key = new_key(), new_key()
    alice = sdk(stack, alice_key)
    batch = create(alice, upload(alice, chat_lines(1)), "/v1/chat/completions")

    with pytest.raises(openai.NotFoundError):
        sdk(stack, bob_key).batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        sdk(stack, bob_key).batches.cancel(batch.id)
    with raw(stack, bob_key) as bob:
        for method, suffix in (("GET", ""), ("POST", "/cancel")):
            theirs = bob.request(method, f"/batches/{batch.id}{suffix}")
            nobodys = bob.request(method, f"/batches/{MISSING_BATCH}{suffix}")
            assert theirs.status_code == nobodys.status_code == 404
            assert error_of(theirs)["code"] == "batch_not_found" and error_of(theirs)["param"] == "batch_id"
            assert error_of(theirs)["message"].replace(batch.id, "ID") == \
                error_of(nobodys)["message"].replace(MISSING_BATCH, "ID")
    assert alice.batches.retrieve(batch.id).status in ("validating", "in_progress")  # bob's cancel did nothing


def test_another_callers_file_cannot_start_a_batch(stack: Stack) -> None:
    alice_key, bob_key = new_key(), new_key()
    alices_file = upload(sdk(stack, alice_key), embedding_lines(1))
    with raw(stack, bob_key) as bob:
        answers = {name: bob.post("/batches", json={"input_file_id": file_id, "endpoint": "/v1/embeddings",
                                                    "completion_window": "24h"})
                   for name, file_id in (("theirs", alices_file), ("missing", MISSING_FILE),
                                         ("path", "../files/" + alices_file), ("upper", alices_file.upper()))}
        for name, answer in answers.items():
            assert answer.status_code == 404, name
            assert (error_of(answer)["code"], error_of(answer)["param"]) == ("file_not_found", "input_file_id"), name
        assert error_of(answers["theirs"])["message"].replace(alices_file, "ID") == \
            error_of(answers["missing"])["message"].replace(MISSING_FILE, "ID")
        assert bob.get("/batches").json()["data"] == []


def test_create_refuses_what_openai_refuses_and_records_nothing(stack: Stack) -> None:
    key = new_key()
    alice = sdk(stack, key)
    embeddings = upload(alice, embedding_lines(2))
    good = {"input_file_id": embeddings, "endpoint": "/v1/embeddings", "completion_window": "24h"}
    refused: list[tuple[dict[str, Any], int, str, str]] = [
        ({"endpoint": "/v1/completions"}, 400, "invalid_batch_endpoint", "endpoint"),
        ({"endpoint": "/v1/chat/completions"}, 400, "invalid_batch_endpoint", "endpoint"),  # not the file's url
        ({"endpoint": "/v1/embeddings/jobs"}, 400, "invalid_batch_endpoint", "endpoint"),
        ({"completion_window": "48h"}, 400, "invalid_completion_window", "completion_window"),
        ({"completion_window": 24}, 422, "invalid_value", "completion_window"),
        ({"unknown_field": 1}, 422, "invalid_value", "unknown_field"),  # as the embedding-jobs route refuses it
        ({"output_expires_after": {"anchor": "created_at", "seconds": 60}}, 422, "invalid_value",
         "output_expires_after.seconds"),
        ({"metadata": {"k": "v" * 513}}, 422, "invalid_value", "metadata.k"),
        ({"input_file_id": plant_file(stack, key, expires_at=time.time() - 1)}, 404, "file_not_found",
         "input_file_id"),
        ({"input_file_id": plant_file(stack, key, purpose="batch_output")}, 400, "invalid_file_purpose",
         "input_file_id"),
        ({"input_file_id": plant_file(stack, key, model="gpt-dropped-since"), "endpoint": "/v1/chat/completions"},
         400, "model_not_allowed", "input_file_id"),
    ]
    with raw(stack, key) as http:
        for change, status, code, param in refused:
            answer = http.post("/batches", json={**good, **change})
            assert (answer.status_code, error_of(answer)["code"], error_of(answer)["param"]) == \
                (status, code, param), change
        missing = http.post("/batches", json={k: v for k, v in good.items() if k != "completion_window"})
        assert (missing.status_code, error_of(missing)["code"]) == (400, "missing_required_parameter")
        assert http.get("/batches").json()["data"] == []
        # Azure's documentation spells the endpoint without /v1; the batch shows OpenAI's spelling.
        ok = http.post("/batches", json={**good, "endpoint": "/embeddings", "metadata": None,
                                         "output_expires_after": {"anchor": "created_at", "seconds": 3600}})
        assert ok.status_code == 200, ok.text
        assert (ok.json()["status"], ok.json()["endpoint"], ok.json()["metadata"]) == \
            ("validating", "/v1/embeddings", None)


def test_ids_of_the_wrong_kind_and_path_tricks_find_nothing(stack: Stack) -> None:
    key = new_key()
    alice = sdk(stack, key)
    batch_id = create(alice, upload(alice, embedding_lines(1))).id
    with raw(stack, key) as http:
        job = http.post("/embeddings/jobs", json={"model": "embed", "input": ["a"]})
        assert job.status_code == 202
        job_id = job.json()["id"]
        for path in (f"/batches/{job_id}", f"/batches/{job_id}/cancel", f"/batches/{batch_id.upper()}",
                     f"/batches/{batch_id}%2F..", "/batches/%2E%2E", f"/batches/..%2F{batch_id}"):
            for method in ("GET", "POST"):
                answer = http.request(method, path)
                # The gateway's 404 (or 405 for the wrong method), or the host's own 404 for a path
                # that routes nowhere once decoded: never the batch, never a 5xx.
                assert answer.status_code in (404, 405) and "input_file_id" not in answer.text, (method, path)
                if answer.status_code == 404 and answer.headers.get("content-type") == "application/json":
                    assert error_of(answer)["code"] == "batch_not_found", (method, path)
        for path in (f"/embeddings/jobs/{batch_id}", f"/embeddings/jobs/{batch_id}/cancel",
                     f"/embeddings/jobs/{batch_id}/results"):
            answer = http.request("POST" if path.endswith("cancel") else "GET", path)
            assert (answer.status_code, error_of(answer)["code"]) == (404, "job_not_found"), path
        assert alice.batches.retrieve(batch_id).id == batch_id  # none of it touched the batch


def test_reading_a_batch_past_its_window_asks_the_engine_once_a_minute_to_close_it(stack: Stack, sim: Sim) -> None:
    sim.configure(ttft_ms=30_000)
    alice = sdk(stack, new_key())
    batch = create(alice, upload(alice, chat_lines(2)), "/v1/chat/completions")
    with table(stack) as rows:
        assert "close_requested_at" not in rows.get_entity(batch.id, "job")
        alice.batches.retrieve(batch.id)
        assert "close_requested_at" not in rows.get_entity(batch.id, "job"), "not due yet"
        # The window runs out (as if 24 hours had passed).
        rows.update_entity({"PartitionKey": batch.id, "RowKey": "job", "expires_at": time.time() - 1},
                           mode=UpdateMode.MERGE)
        alice.batches.retrieve(batch.id)
        asked = rows.get_entity(batch.id, "job").get("close_requested_at")
        assert asked is not None and abs(asked - time.time()) < 30
        alice.batches.retrieve(batch.id)
        row = rows.get_entity(batch.id, "job")
    assert row["status"] == "expired" or row.get("close_requested_at") == asked, "asked again within the minute"
    ended = wait_until_ended(alice, batch.id)  # the engine's close ends it, its lines as batch_expired errors
    assert ended.status == "expired" and ended.expired_at is not None and ended.completed_at is None


def wait_until_ended(client: openai.OpenAI, batch_id: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        time.sleep(0.3)
    raise AssertionError(f"batch {batch_id} still {batch.status} after {timeout} s")


def test_a_finished_batch_shows_its_outcome_and_cannot_be_cancelled(stack: Stack) -> None:
    key = new_key()
    alice = sdk(stack, key)
    done = wait_until_ended(alice, create(alice, upload(alice, embedding_lines(3))).id)
    assert done.status == "completed" and done.request_counts is not None
    assert done.request_counts.model_dump() == {"total": 3, "completed": 3, "failed": 0}
    assert done.output_file_id and done.error_file_id is None and done.errors is None
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    assert done.created_at <= done.in_progress_at <= done.finalizing_at <= done.completed_at
    assert done.failed_at is None and done.cancelled_at is None and done.expired_at is None
    assert done.usage is not None and done.usage.total_tokens > 0
    assert (done.usage.input_tokens, done.usage.output_tokens) == (done.usage.total_tokens, 0)  # embeddings
    with pytest.raises(openai.ConflictError) as refused:  # OpenAI answers 409 too
        alice.batches.cancel(done.id)
    assert refused.value.code == "batch_not_cancellable" and "'completed'" in refused.value.message
    assert alice.batches.retrieve(done.id).status == "completed"
    listed = alice.batches.list().data
    assert [b.id for b in listed] == [done.id] and listed[0].model_dump() == done.model_dump()


def test_a_batch_kept_past_the_retention_answers_like_a_missing_one(stack: Stack) -> None:
    alice = sdk(stack, new_key())
    kept = wait_until_ended(alice, create(alice, upload(alice, embedding_lines(1))).id)
    gone = wait_until_ended(alice, create(alice, upload(alice, embedding_lines(1))).id)
    with table(stack) as rows:  # DATA_RETENTION_DAYS have passed since this one ended
        rows.update_entity({"PartitionKey": gone.id, "RowKey": "job", "retain_until": time.time() - 1},
                           mode=UpdateMode.MERGE)
    for call in (alice.batches.retrieve, alice.batches.cancel):
        with pytest.raises(openai.NotFoundError) as missing:
            call(gone.id)
        assert missing.value.code == "batch_not_found"
    assert [b.id for b in alice.batches.list().data] == [kept.id]


# The Batch object's status and errors, from row states the engine passes through too briefly to
# catch over HTTP (a unit test of ``shared.batch.view``).

def _state(done: int = 0, **row: Any) -> Any:
    from shared.jobs.store import ChunkState, JobState

    return JobState({"PartitionKey": MISSING_BATCH, "total": 4, **row},
                    [ChunkState(n, 1, 1, 0, 5) for n in range(done)])


@pytest.mark.parametrize(("row", "done", "expected"), [
    ({"status": "queued"}, 0, "validating"),
    ({"status": "running"}, 0, "validating"),  # planning: not yet enqueued
    ({"status": "running", "enqueued": True, "chunks": 2}, 1, "in_progress"),
    ({"status": "running", "enqueued": True, "chunks": 2}, 2, "finalizing"),
    ({"status": "running", "enqueued": True, "chunks": 2, "finalizing_at": 1.0}, 1, "finalizing"),
    ({"status": "cancelling"}, 0, "cancelling"),
    ({"status": "succeeded"}, 0, "completed"),
    ({"status": "failed"}, 0, "failed"),
    ({"status": "cancelled"}, 0, "cancelled"),
    ({"status": "expired"}, 0, "expired"),
])
def test_the_row_status_maps_to_openais(row: dict[str, Any], done: int, expected: str) -> None:
    from shared.batch.view import batch_view

    view = batch_view(MISSING_BATCH, _state(done, **row))
    assert view["status"] == expected
    assert view["request_counts"] == {"total": 4, "completed": done, "failed": 0}  # live from chunk rows
    assert view["usage"]["total_tokens"] == 5 * done


def test_a_failed_batch_lists_its_errors_and_only_its_own_end_time() -> None:
    from shared.batch.view import batch_view

    by_line = [{"code": "invalid_url", "message": "bad url", "param": "url", "line": 3}]
    view = batch_view(MISSING_BATCH, _state(status="failed", completed_at=20.5, errors=json.dumps(by_line)))
    assert view["errors"] == {"object": "list", "data": by_line}
    assert (view["failed_at"], view["completed_at"], view["cancelled_at"]) == (20, None, None)
    engine = batch_view(MISSING_BATCH, _state(status="failed", failed_at=9.0, error_code="enqueue_failed",
                                              error="queue down"))
    assert engine["errors"]["data"] == [{"code": "enqueue_failed", "message": "queue down", "param": None,
                                         "line": None}]
    assert engine["failed_at"] == 9
    split = batch_view(MISSING_BATCH, _state(status="succeeded", embedded=4, failed=0, tokens=30, input_tokens=10,
                                             output_tokens=20, completed_at=5.0))
    assert (split["usage"]["input_tokens"], split["usage"]["output_tokens"], split["usage"]["total_tokens"]) == \
        (10, 20, 30)
    assert split["completed_at"] == 5 and split["request_counts"]["completed"] == 4


CREATE_VALID: list[dict[str, Any]] = [
    {"input_file_id": MISSING_FILE, "endpoint": "/v1/embeddings", "completion_window": "24h"},
    {"input_file_id": "f", "endpoint": "/chat/completions", "completion_window": "24h", "metadata": None,
     "output_expires_after": {"anchor": "created_at", "seconds": 2592000.0}},
    {"input_file_id": "f", "endpoint": "/v1/responses", "completion_window": "24h", "metadata": {"k": "v" * 512}},
]
CREATE_INVALID: list[dict[str, Any]] = [
    {"endpoint": "/v1/embeddings", "completion_window": "24h"},
    {"input_file_id": "", "endpoint": "/v1/embeddings", "completion_window": "24h"},
    {"input_file_id": "f", "endpoint": "/v1/completions", "completion_window": "24h"},
    {"input_file_id": "f", "endpoint": "/v1/embeddings", "completion_window": "1h"},
    {"input_file_id": "f", "endpoint": "/v1/embeddings", "completion_window": "24h", "extra": 1},
    {"input_file_id": "f", "endpoint": "/v1/embeddings", "completion_window": "24h",
     "output_expires_after": {"anchor": "created_at", "seconds": 3599}},
    {"input_file_id": "f", "endpoint": "/v1/embeddings", "completion_window": "24h",
     "output_expires_after": {"anchor": "now", "seconds": 3600}},
    {"input_file_id": "f", "endpoint": "/v1/embeddings", "completion_window": "24h", "metadata": {"k": 1}},
]


@pytest.mark.parametrize(("body", "ok"), [(b, True) for b in CREATE_VALID] + [(b, False) for b in CREATE_INVALID])
def test_the_openapi_create_schema_matches_the_route(body: dict[str, Any], ok: bool) -> None:
    from jsonschema import Draft202012Validator

    from shared.batch.openapi_schema import CREATE_REQUEST
    from shared.batch.service import COMPLETION_WINDOW, ENDPOINTS, CreateBatchRequest

    accepted_by_schema = not list(Draft202012Validator(CREATE_REQUEST).iter_errors(body))
    try:
        request = CreateBatchRequest.model_validate_json(json.dumps(body))
        accepted_by_route = request.completion_window == COMPLETION_WINDOW and \
            ("/v1" + request.endpoint.removeprefix("/v1")) in ENDPOINTS
    except ValueError:
        accepted_by_route = False
    assert accepted_by_schema == accepted_by_route == ok


async def new_caller_with_a_batch_file(pipeline: Pipeline) -> tuple[RequestContext, bytes]:
    """A request context of a new caller, and the create body of a batch of a two-line file recorded as theirs."""
    from shared.batch import files
    from shared.context import RequestContext

    caller = identify({"x-functions-key": new_key()})
    file_id = "file-" + secrets.token_hex(16)
    await files.record_file(pipeline.runtime, file_id, owner=caller, purpose="batch", filename="in.jsonl", size=10,
                            lines=2, blob=f"files/{file_id}.jsonl", endpoint="/v1/embeddings", model="embed")
    ctx = RequestContext.new(30)
    ctx.caller = caller
    body = {"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"}
    return ctx, json.dumps(body).encode()


def queue_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on every queue message fails to send, as when the queue service cannot be reached."""
    from azure.core.exceptions import ServiceRequestError

    from shared.jobs import enqueue

    async def queue_down(*_: Any, **__: Any) -> None:
        raise ServiceRequestError("the queue service cannot be reached")

    monkeypatch.setattr(enqueue, "put_message", queue_down)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_batch_that_cannot_be_queued_ends_failed_and_the_caller_gets_503(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.batch import service
    from shared.errors import GatewayError

    ctx, body = await new_caller_with_a_batch_file(pipeline)
    queue_unreachable(monkeypatch)
    with pytest.raises(GatewayError) as refused:
        await service.create(ctx, body)
    assert (refused.value.status, refused.value.code) == (503, "storage_unavailable")
    listed = json.loads((await service.list_batches(ctx, {})).body)["data"]
    assert len(listed) == 1 and listed[0]["status"] == "failed" and listed[0]["failed_at"] is not None
    assert listed[0]["errors"]["data"][0]["code"] == "enqueue_failed"
    assert "ServiceRequestError" in listed[0]["errors"]["data"][0]["message"]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_cancel_whose_close_could_not_be_queued_asks_again_on_the_next_call(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from shared.batch import service
    from shared.errors import GatewayError
    from shared.jobs import enqueue

    ctx, body = await new_caller_with_a_batch_file(pipeline)
    batch_id = json.loads((await service.create(ctx, body)).body)["id"]
    working = enqueue.put_message

    async def closes() -> list[dict[str, Any]]:
        peeked = await pipeline.runtime.queue.peek_messages(max_messages=32)
        sent = [json.loads(base64.b64decode(m.content)) for m in peeked]
        return [m for m in sent if m.get("id") == batch_id and m.get("action") == "close"]

    queue_unreachable(monkeypatch)
    with pytest.raises(GatewayError) as refused:
        await service.cancel(ctx, batch_id)
    assert refused.value.status == 503 and await closes() == []
    monkeypatch.setattr(enqueue, "put_message", working)
    again = json.loads((await service.cancel(ctx, batch_id)).body)
    assert again["status"] == "cancelling" and again["cancelling_at"] is not None
    assert len(await closes()) == 1
    json.loads((await service.cancel(ctx, batch_id)).body)  # within the minute: not asked a third time
    assert len(await closes()) == 1
