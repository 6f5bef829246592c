"""The OpenAI Batch API through the running local host (issue #15), with the official SDKs unchanged.

Upload (``client.files.create(purpose="batch")``), create, poll, download the output and error files,
cancel, expiry, listing with pagination, refused uploads, and the fault cases the engine must survive
(duplicated queue messages, a host killed mid-batch, long throttling): each through the local
Functions host + the simulator + Azurite as real processes. The JavaScript SDK runs the same round
trip from ``batch_sdk.mjs``.

How a test makes the engine's work observable: a line of embeddings may carry many inputs, and a
chunk holds whole lines of at most 2048 inputs, so lines of 1,000 inputs make exactly one chunk per
two lines. The simulator's scripted faults (first in, first out, one per upstream call) then decide
how long each chunk takes.

Each test uses its own caller (``x-functions-key``): batches and files are their creator's alone.
"""

from __future__ import annotations

import array
import base64
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient
from openai.types import Batch

from devhost.stack import Stack
from tests.e2e.conftest import Sim
from tests.e2e.test_upstream_fidelity import _node_with_openai
from tests.security.conftest import ROOT, start_stack

pytestmark = pytest.mark.timeout(120)

EMBED = "text-embedding-3-small"
CHAT = "gpt-4o-mini"
NOT_ALLOWED = "gpt-4.1-mini"  # deployed on the simulator, not in OPENAI_MODELS
QUEUE, TABLE = "embedding-jobs", "embeddingjobs"  # the engine's defaults (EMBEDDING_JOBS_QUEUE, _TABLE)
JS_BATCH = Path(__file__).with_name("batch_sdk.mjs")
TERMINAL = {"completed", "failed", "cancelled", "expired"}
LIFECYCLE = ["validating", "in_progress", "finalizing", "completed"]
# Short leases, so that messages a killed host held come back within seconds (Azure: 10 minutes).
ENV = {"DEVHOST_QUEUE_LEASE_SECONDS": "6"}


# --- the stack, callers and small helpers ------------------------------------------------------------

@pytest.fixture(scope="module")
def running() -> Iterator[tuple[Stack, Sim]]:
    with start_stack(ENV) as started:
        yield started


@pytest.fixture
def stack(running: tuple[Stack, Sim]) -> Stack:
    return running[0]


@pytest.fixture
def sim(running: tuple[Stack, Sim]) -> Sim:
    running[1].reset()
    return running[1]


def sdk(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.host_url}/api/v1", api_key="local", max_retries=0,
                         default_headers={"x-functions-key": key})


@pytest.fixture
def key() -> str:
    return "batch-caller-" + uuid.uuid4().hex


@pytest.fixture
def client(stack: Stack, sim: Sim, key: str) -> openai.OpenAI:
    return sdk(stack, key)


def line(custom_id: str, body: dict[str, Any], url: str = "/v1/embeddings") -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def big_lines(count: int, prefix: str, inputs: int = 1000) -> list[dict[str, Any]]:
    """``count`` embeddings lines of ``inputs`` short texts each: two such lines fill one chunk."""
    return [line(f"{prefix}-{n}", {"model": EMBED, "input": [f"{prefix} {n} text {i}" for i in range(inputs)],
                                   "dimensions": 8})
            for n in range(count)]


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in lines)


def upload(client: openai.OpenAI, lines: list[dict[str, Any]]) -> str:
    return client.files.create(file=("batch.jsonl", jsonl(lines)), purpose="batch").id


def submit(client: openai.OpenAI, lines: list[dict[str, Any]], endpoint: str = "/v1/embeddings") -> Batch:
    return client.batches.create(input_file_id=upload(client, lines), endpoint=endpoint,  # type: ignore[arg-type]
                                 completion_window="24h")


def poll(client: openai.OpenAI, batch_id: str, timeout: float = 60, interval: float = 0.1,
         until: Callable[[Batch], bool] = lambda batch: batch.status in TERMINAL) -> list[Batch]:
    """Every state seen while polling ``retrieve`` until ``until`` holds (the last one does)."""
    seen: list[Batch] = []
    deadline = time.monotonic() + timeout
    while True:
        seen.append(client.batches.retrieve(batch_id))
        if until(seen[-1]):
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch_id} still {seen[-1].status}: {seen[-1].request_counts}")
        time.sleep(interval)


def file_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(text) for text in client.files.content(file_id).text.splitlines() if text]


def outcome(client: openai.OpenAI, batch: Batch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(output lines, error lines); a file the batch did not need is an empty list."""
    output = file_lines(client, batch.output_file_id) if batch.output_file_id else []
    errors = file_lines(client, batch.error_file_id) if batch.error_file_id else []
    return output, errors


def assert_each_once_in_order(lines: list[dict[str, Any]], output: list[dict[str, Any]],
                              errors: list[dict[str, Any]]) -> None:
    """Every custom_id in exactly one of the two files, once, and each file in input order."""
    order = [item["custom_id"] for item in lines]
    got = [item["custom_id"] for item in output] + [item["custom_id"] for item in errors]
    assert sorted(got) == sorted(order), "a line is missing or repeated"
    position = {custom_id: n for n, custom_id in enumerate(order)}
    for part in (output, errors):
        places = [position[item["custom_id"]] for item in part]
        assert places == sorted(places), "lines out of input order"
    ids = [item["id"] for item in output + errors]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"batch_req_[0-9a-f]{32}", i) for i in ids), ids


def float32(item: dict[str, Any]) -> tuple[str, int, bytes | str]:
    """An embedding item with its vector as float32 bytes: JSON may spell one float32 in fewer or more
    digits (``-0.175572947`` or ``-0.1755729466676712``), the value is what must be identical. A
    base64 vector is compared as sent."""
    vector = item["embedding"]
    return item["object"], item["index"], vector if isinstance(vector, str) else array.array("f", vector).tobytes()


def vectors_ok(client: openai.OpenAI, lines: list[dict[str, Any]], output: list[dict[str, Any]]) -> None:
    """Each output line carries what ``POST /v1/embeddings`` gives for the same body through the gateway."""
    by_id = {item["custom_id"]: item for item in lines}
    for item in output:
        body = dict(by_id[item["custom_id"]]["body"])
        body.setdefault("encoding_format", "float")  # OpenAI's default; the SDK would ask base64
        reference = client.embeddings.with_raw_response.create(**body).http_response.json()
        got = item["response"]["body"]
        assert item["response"]["status_code"] == 200 and item["error"] is None
        assert isinstance(item["response"]["request_id"], str) and item["response"]["request_id"]
        assert (got["object"], got["model"]) == (reference["object"], reference["model"]), item["custom_id"]
        assert [float32(d) for d in got["data"]] == [float32(d) for d in reference["data"]], item["custom_id"]
        assert got["usage"]["prompt_tokens"] > 0 and got["usage"]["total_tokens"] >= got["usage"]["prompt_tokens"]


def wait_in_flight(sim: Sim, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while sim.stats()["in_flight"] == 0:
        if time.monotonic() > deadline:
            raise TimeoutError("no request reached the simulator")
        time.sleep(0.05)


# --- the round trip -----------------------------------------------------------------------------------

def test_embeddings_batch_round_trip_matches_the_synchronous_api(client: openai.OpenAI, sim: Sim,
                                                                 tmp_path: Path) -> None:
    lines = [
        line("plain", {"model": EMBED, "input": "the first text"}),
        line("many", {"model": EMBED, "input": ["a", "list", "of", "texts"]}),
        line("short", {"model": EMBED, "input": "shortened vectors", "dimensions": 64}),
        line("packed", {"model": EMBED, "input": ["base64 please", "two"], "encoding_format": "base64"}),
        line("refused", {"model": EMBED, "input": "too many dimensions", "dimensions": 4096}),
        line("last", {"model": EMBED, "input": ["the", "end"], "dimensions": 64}),
    ]
    path = tmp_path / "requests.jsonl"
    path.write_bytes(jsonl(lines))
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    assert re.fullmatch(r"file-[0-9a-f]{32}", uploaded.id), uploaded.id
    assert (uploaded.object, uploaded.purpose, uploaded.bytes, uploaded.filename) == \
        ("file", "batch", path.stat().st_size, "requests.jsonl")
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert client.files.content(uploaded.id).content == path.read_bytes()

    created = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h",
                                    metadata={"purpose": "round trip"})
    assert re.fullmatch(r"batch_[0-9a-f]{32}", created.id), created.id
    assert (created.object, created.status, created.endpoint, created.input_file_id, created.completion_window,
            created.metadata) == ("batch", "validating", "/v1/embeddings", uploaded.id, "24h",
                                  {"purpose": "round trip"})
    assert created.expires_at is not None and created.expires_at - created.created_at == pytest.approx(86400, abs=2)

    seen = poll(client, created.id)
    done = seen[-1]
    assert done.status == "completed", done
    assert [s for s in dict.fromkeys(b.status for b in seen)] == \
        [s for s in LIFECYCLE if s in {b.status for b in seen}], "statuses out of lifecycle order"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (6, 5, 1)
    assert done.completed_at is not None and done.in_progress_at is not None
    assert done.created_at <= done.in_progress_at <= done.completed_at
    assert done.metadata == {"purpose": "round trip"}

    output, errors = outcome(client, done)
    assert_each_once_in_order(lines, output, errors)
    assert [item["custom_id"] for item in output] == ["plain", "many", "short", "packed", "last"]
    vectors_ok(client, lines, output)
    packed = next(item for item in output if item["custom_id"] == "packed")["response"]["body"]["data"]
    assert all(isinstance(d["embedding"], str) and len(base64.b64decode(d["embedding"])) == 1536 * 4 for d in packed)

    [refused] = errors
    assert refused["custom_id"] == "refused" and refused["error"] is None
    assert refused["response"]["status_code"] == 400
    assert refused["response"]["body"]["error"]["message"], refused
    for file_id in (done.output_file_id, done.error_file_id):
        assert file_id is not None
        meta = client.files.retrieve(file_id)
        assert (meta.purpose, meta.bytes) == ("batch_output", len(client.files.content(file_id).content))


def test_request_counts_grow_while_chunks_finish(client: openai.OpenAI, sim: Sim) -> None:
    # Four chunks (two 1,000-input lines each), the n-th upstream call answering after n x 700 ms.
    sim.fault(faults=[{"kind": "slow_first_byte", "path": "embeddings", "ms": 700 * n, "count": 1}
                      for n in range(1, 5)])
    lines = big_lines(8, "grow")
    created = submit(client, lines)
    seen = poll(client, created.id, timeout=60)
    assert seen[-1].status == "completed", seen[-1]
    counts = [b.request_counts.completed for b in seen if b.request_counts is not None]
    assert counts == sorted(counts), "request_counts.completed went back"
    partial = {c for c in counts if 0 < c < 8}
    assert len(partial) >= 2, f"progress not visible while running: {counts}"
    assert "in_progress" in {b.status for b in seen}
    assert sim.stats("embeddings")["counts"]["embeddings"] == 4  # one upstream call per chunk
    output, errors = outcome(client, seen[-1])
    assert errors == [] and seen[-1].error_file_id is None
    assert_each_once_in_order(lines, output, errors)


def test_chat_and_responses_batches(client: openai.OpenAI, sim: Sim) -> None:
    chat = [line(f"chat-{n}", {"model": CHAT, "messages": [{"role": "user", "content": f"question {n}"}]},
                 url="/v1/chat/completions") for n in range(5)]
    chat.insert(2, line("chat-refused", {"model": CHAT, "max_tokens": 0,
                                         "messages": [{"role": "user", "content": "no room"}]},
                        url="/v1/chat/completions"))
    responses = [line(f"resp-{n}", {"model": CHAT, "input": f"responses question {n}"}, url="/v1/responses")
                 for n in range(3)]
    chat_batch = submit(client, chat, endpoint="/v1/chat/completions")
    responses_batch = submit(client, responses, endpoint="/v1/responses")

    done = poll(client, chat_batch.id)[-1]
    assert done.status == "completed", done
    assert done.request_counts is not None and (done.request_counts.completed, done.request_counts.failed) == (5, 1)
    output, errors = outcome(client, done)
    assert_each_once_in_order(chat, output, errors)
    for item in output:
        body = item["response"]["body"]
        assert body["object"] == "chat.completion" and item["response"]["status_code"] == 200
        question = next(c for c in chat if c["custom_id"] == item["custom_id"])["body"]["messages"][0]["content"]
        assert body["choices"][0]["message"]["content"].startswith(f"Simulated reply to: {question}")
    [refused] = errors
    assert refused["custom_id"] == "chat-refused" and refused["response"]["status_code"] == 400
    assert refused["response"]["body"]["error"]["param"] == "max_tokens"

    done = poll(client, responses_batch.id)[-1]
    assert done.status == "completed", done
    output, errors = outcome(client, done)
    assert errors == []
    assert_each_once_in_order(responses, output, errors)
    assert all(item["response"]["body"]["object"] == "response" for item in output)
    assert all(item["response"]["body"]["status"] == "completed" for item in output)


# --- cancel, expiry, listing -------------------------------------------------------------------------

def test_cancel_keeps_finished_lines_and_cancels_the_rest(client: openai.OpenAI, sim: Sim) -> None:
    # Three chunks: the first upstream call answers at once, every later one takes 8 s.
    sim.fault(faults=[{"kind": "slow_first_byte", "path": "embeddings", "ms": 0, "count": 1},
                      {"kind": "slow_first_byte", "path": "embeddings", "ms": 8000, "count": 20}])
    lines = big_lines(6, "cancel")
    created = submit(client, lines)
    poll(client, created.id, timeout=30,
         until=lambda b: b.request_counts is not None and b.request_counts.completed > 0)
    cancelling = client.batches.cancel(created.id)
    assert cancelling.status == "cancelling", cancelling
    assert cancelling.cancelling_at is not None
    done = poll(client, created.id, timeout=30)[-1]
    assert done.status == "cancelled", done
    assert done.cancelled_at is not None and done.cancelled_at >= cancelling.cancelling_at
    output, errors = outcome(client, done)
    assert_each_once_in_order(lines, output, errors)
    assert len(output) >= 2 and errors, (len(output), len(errors))
    assert all(item["response"]["status_code"] == 200 for item in output)
    assert all(item["response"] is None and item["error"]["code"] == "batch_cancelled" for item in errors)
    assert done.request_counts is not None and done.request_counts.completed == len(output)


def test_a_batch_past_its_completion_window_expires() -> None:
    with start_stack({"BATCH_COMPLETION_WINDOW_SECONDS": "4"}) as (stack, sim):
        client = sdk(stack, "expiry-caller")
        # Two chunks: one answers at once, the other never within the window.
        sim.fault(faults=[{"kind": "slow_first_byte", "path": "embeddings", "ms": 0, "count": 1},
                          {"kind": "hang", "path": "embeddings", "seconds": 30, "count": 20}])
        lines = big_lines(2, "expire", inputs=1500)
        created = submit(client, lines)
        assert created.expires_at is not None and created.expires_at - created.created_at == pytest.approx(4, abs=1)
        done = poll(client, created.id, timeout=40, interval=0.25)[-1]
        assert done.status == "expired", done
        assert done.expired_at is not None and done.expired_at >= created.expires_at
        output, errors = outcome(client, done)
        assert_each_once_in_order(lines, output, errors)
        assert len(output) == 1 and output[0]["response"]["status_code"] == 200
        assert len(errors) == 1 and errors[0]["response"] is None
        assert errors[0]["error"]["code"] == "batch_expired"


def test_list_pages_through_the_callers_own_batches(stack: Stack, client: openai.OpenAI, sim: Sim) -> None:
    file_id = upload(client, [line("only", {"model": EMBED, "input": "listed"})])
    ids = [client.batches.create(input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h").id
           for _ in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more is True  # newest first
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]  # auto-paging follows `after`

    other = sdk(stack, "another-caller-" + uuid.uuid4().hex)
    assert [b.id for b in other.batches.list()] == []
    with pytest.raises(openai.NotFoundError) as batch_missing:
        other.batches.retrieve(ids[0])
    assert (batch_missing.value.code, batch_missing.value.param) == ("batch_not_found", "batch_id")
    with pytest.raises(openai.NotFoundError) as cancel_missing:
        other.batches.cancel(ids[0])
    assert cancel_missing.value.code == "batch_not_found"
    for peek in (other.files.retrieve, other.files.content):
        with pytest.raises(openai.NotFoundError) as file_missing:
            peek(file_id)
        assert (file_missing.value.code, file_missing.value.param) == ("file_not_found", "file_id")
    with pytest.raises(openai.NotFoundError) as theirs:
        other.batches.create(input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h")
    assert theirs.value.code == "file_not_found"
    finished = [poll(client, batch_id)[-1] for batch_id in ids]
    assert all(batch.status == "completed" for batch in finished)
    output_id = finished[0].output_file_id
    assert output_id is not None
    with pytest.raises(openai.NotFoundError) as output_missing:
        other.files.content(output_id)  # the output file is the batch owner's too
    assert output_missing.value.code == "file_not_found"
    with pytest.raises(openai.ConflictError) as ended:
        client.batches.cancel(ids[0])
    assert ended.value.code == "batch_not_cancellable"


def test_files_are_listed_and_deleted_by_their_owner(client: openai.OpenAI) -> None:
    ids = [upload(client, [line(f"f{n}", {"model": EMBED, "input": "kept"})]) for n in range(3)]
    listed = [f.id for f in client.files.list(purpose="batch")]
    assert sorted(listed) == sorted(ids)
    deleted = client.files.delete(ids[1])
    assert (deleted.id, deleted.deleted) == (ids[1], True)
    with pytest.raises(openai.NotFoundError) as gone:
        client.files.retrieve(ids[1])
    assert gone.value.code == "file_not_found"
    assert sorted(f.id for f in client.files.list(purpose="batch")) == sorted([ids[0], ids[2]])


def test_one_input_lines_are_packed_into_few_upstream_calls(client: openai.OpenAI, sim: Sim) -> None:
    lines = [line(f"p{n}", {"model": EMBED, "input": f"packed line {n}", "dimensions": 8}) for n in range(5000)]
    created = submit(client, lines)
    done = poll(client, created.id, timeout=60, interval=0.25)[-1]
    assert done.status == "completed", done
    assert sim.stats("embeddings")["counts"]["embeddings"] == 3  # 5,000 inputs in calls of at most 2,048
    output, errors = outcome(client, done)
    assert errors == []
    assert_each_once_in_order(lines, output, errors)
    vectors_ok(client, [lines[0], lines[2047], lines[2048], lines[-1]],
               [output[0], output[2047], output[2048], output[-1]])


# --- refused uploads and creates ---------------------------------------------------------------------

GOOD = line("good", {"model": EMBED, "input": "fine"})


@pytest.mark.parametrize(("raw", "number", "code"), [
    (jsonl([GOOD]) + b"{not json\n", 2, "invalid_json_line"),
    (jsonl([GOOD, GOOD]), 2, "duplicate_custom_id"),
    (jsonl([line("x", {"model": NOT_ALLOWED, "input": "x"})]), 1, "model_not_found"),
    (jsonl([GOOD, line("x", {"model": "embed", "input": "x"})]), 2, "mismatched_model"),
    (jsonl([line("x", {"model": CHAT, "input": "x"})]), 1, "model_not_embedding"),
    (jsonl([line("x", {"model": EMBED, "input": "x"}, url="/v1/images/generations")]), 1, "invalid_url"),
    (jsonl([GOOD, line("x", {"model": EMBED, "input": "x"}, url="/v1/chat/completions")]), 2, "mismatched_url"),
    (jsonl([line("x", {"model": CHAT, "messages": [], "stream": True}, url="/v1/chat/completions")]), 1,
     "invalid_body"),
], ids=["not-json", "duplicate-custom-id", "model-not-allowed", "two-models", "chat-model-for-embeddings",
        "unknown-url", "two-urls", "streaming"])
def test_an_invalid_upload_is_refused_naming_its_line(client: openai.OpenAI, raw: bytes, number: int,
                                                      code: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("bad.jsonl", raw), purpose="batch")
    error = refused.value
    assert (error.code, error.type, error.param) == ("invalid_batch_file", "invalid_request_error", "file"), error.body
    assert f"Line {number}:" in error.message, error.message
    assert isinstance(error.body, dict)
    [found] = error.body["errors"]["data"]  # the Batch object's ``errors`` shape, one entry per bad line
    assert (found["code"], found["line"]) == (code, number), found
    assert [f.id for f in client.files.list()] == []  # nothing was stored


def test_create_refuses_an_endpoint_the_file_does_not_use(client: openai.OpenAI) -> None:
    file_id = upload(client, [GOOD])
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    assert (refused.value.code, refused.value.param) == ("invalid_batch_endpoint", "endpoint"), refused.value.body
    with pytest.raises(openai.BadRequestError) as window:
        client.batches.create(input_file_id=file_id, endpoint="/v1/embeddings",
                              completion_window="1h")  # type: ignore[arg-type]
    assert (window.value.code, window.value.param) == ("invalid_completion_window", "completion_window")
    with pytest.raises(openai.NotFoundError) as missing:
        client.batches.create(input_file_id="file-" + "0" * 32, endpoint="/v1/embeddings", completion_window="24h")
    assert (missing.value.code, missing.value.param) == ("file_not_found", "input_file_id")
    assert [b.id for b in client.batches.list()] == []


# --- the JavaScript SDK ------------------------------------------------------------------------------

def test_the_javascript_sdk_runs_a_batch(stack: Stack, client: openai.OpenAI, sim: Sim, key: str,
                                         tmp_path: Path) -> None:
    node = _node_with_openai()
    # The first batch's one (packed) upstream call answers at once; the second batch's take 8 s.
    sim.fault(faults=[{"kind": "slow_first_byte", "path": "embeddings", "ms": 0, "count": 1},
                      {"kind": "slow_first_byte", "path": "embeddings", "ms": 8000, "count": 5}])
    lines = [line(f"js-{n}", {"model": EMBED, "input": f"javascript text {n}", "dimensions": 16}) for n in range(5)]
    path = tmp_path / "js.jsonl"
    path.write_bytes(jsonl(lines))
    done = subprocess.run([node, str(JS_BATCH), f"{stack.host_url}/api/v1", key, str(path)], capture_output=True,
                          text=True, timeout=90, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    sim.http.delete("/_sim/faults").raise_for_status()  # the references below need a prompt upstream
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["uploaded"] == ["file", "batch"]
    assert seen["created"] == "validating" and seen["final"] == "completed"
    assert seen["counts"] == {"total": 5, "completed": 5, "failed": 0}
    assert (seen["running"], seen["cancelling"], seen["cancelled"]) == ("in_progress", "cancelling", "cancelled")
    assert seen["cancelledOutput"] + len(seen["cancelledErrors"]) == 5
    assert set(seen["cancelledErrors"]) <= {"batch_cancelled"} and seen["cancelledErrors"]
    assert seen["listed"] == [seen["secondId"], seen["batchId"]]  # newest first, one per page
    assert seen["missing"] == [404, "batch_not_found"]
    assert seen["badUpload"] == [400, "invalid_batch_file"]
    output = [json.loads(text) for text in seen["output"].splitlines() if text]
    assert_each_once_in_order(lines, output, [])
    vectors_ok(client, lines, output)
    # The same batch, seen from Python.
    assert client.batches.retrieve(seen["batchId"]).output_file_id == seen["outputFileId"]


# --- fault cases -------------------------------------------------------------------------------------

class Duplicator:
    """Puts a second copy of every message that appears on the engine's queue, as at-least-once delivery may.

    It peeks (never takes) the queue, so the host still receives every original; a copy is never
    copied again. ``bodies`` keeps what was copied, to deliver it once more after the batch ended.
    """

    def __init__(self, connection_string: str) -> None:
        self.queue = QueueClient.from_connection_string(connection_string, QUEUE)
        self.known: set[str] = set()
        self.bodies: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="duplicator", daemon=True)

    def __enter__(self) -> Duplicator:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                peeked = self.queue.peek_messages(max_messages=32)
            except ResourceNotFoundError:  # the host creates the queue; not there yet on a fresh stack
                peeked = []
            for message in peeked:
                if message.id in self.known:
                    continue
                self.known.add(message.id)
                self.known.add(self.queue.send_message(message.content).id)
                self.bodies.append(message.content)
            time.sleep(0.01)

    def copy_plan(self, connection_string: str, batch_id: str) -> None:
        """A second copy of the batch's ``plan`` message, byte for byte what the service sent.

        Peeking can lose the race for the very first message to a host polling at that moment, so the
        copy of ``plan`` does not rely on it: the message is rebuilt from the batch's row (its token).
        """
        with TableClient.from_connection_string(connection_string, TABLE) as table:
            token = table.get_entity(batch_id, "job")["token"]
        body = {"schema": "embedding-job/v1", "type": "batch", "id": batch_id, "token": token, "action": "plan"}
        self.bodies.append(base64.b64encode(json.dumps(body).encode()).decode())
        with QueueClient.from_connection_string(connection_string, QUEUE) as queue:  # not the thread's client
            queue.send_message(self.bodies[-1])

    def kinds(self) -> list[str]:
        decoded = [json.loads(base64.b64decode(body)) for body in self.bodies]
        return [f"{m['type']}:{m.get('action', '')}" for m in decoded]

    def deliver_again(self) -> None:
        for body in self.bodies:
            self.queue.send_message(body)


def test_duplicated_queue_messages_give_each_line_once(stack: Stack, client: openai.OpenAI, sim: Sim) -> None:
    assert stack.storage_connection_string
    sim.fault(kind="slow_first_byte", path="embeddings", ms=400, count=100)
    lines = big_lines(12, "dup")
    with Duplicator(stack.storage_connection_string) as duplicator:
        created = submit(client, lines)
        if "batch:plan" not in duplicator.kinds():
            duplicator.copy_plan(stack.storage_connection_string, created.id)
        done = poll(client, created.id, timeout=60)[-1]
    assert done.status == "completed", done
    kinds = duplicator.kinds()
    assert "batch:plan" in kinds and kinds.count("chunk:") >= 1, kinds
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed, done.request_counts.total) == (12, 0, 12)
    output, errors = outcome(client, done)
    assert errors == []
    assert_each_once_in_order(lines, output, errors)
    # Late redelivery of everything, after the end: nothing changes.
    duplicator.deliver_again()
    time.sleep(3)
    again = client.batches.retrieve(created.id)
    assert (again.status, again.request_counts) == (done.status, done.request_counts)
    assert outcome(client, again) == (output, errors)


def survives_mid_batch(client: openai.OpenAI, sim: Sim, prefix: str, request_ms: int,
                       disrupt: Callable[[], None], timeout: float) -> None:
    """A batch of six 1,000-input lines, disrupted while chunks are in flight (each upstream call takes
    ``request_ms``), completes with every line once, in order."""
    sim.fault(kind="slow_first_byte", path="embeddings", ms=request_ms, count=100)
    lines = big_lines(6, prefix)
    created = submit(client, lines)
    wait_in_flight(sim)
    disrupt()
    done = poll(client, created.id, timeout=timeout, interval=0.25)[-1]
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (6, 0)
    output, errors = outcome(client, done)
    assert errors == []
    assert_each_once_in_order(lines, output, errors)


def test_a_host_killed_mid_batch_is_finished_by_the_next_one(stack: Stack, client: openai.OpenAI, sim: Sim) -> None:
    def kill_and_restart() -> None:
        stack.kill_host()
        stack.restart_host()

    survives_mid_batch(client, sim, "killed", 2500, kill_and_restart, timeout=60)


def test_long_throttling_delays_the_batch_but_loses_nothing(client: openai.OpenAI, sim: Sim) -> None:
    # Every embeddings call is refused with 429 for 6 s, then the limit lifts.
    sim.fault(kind="status", status=429, path="embeddings", retry_after_ms=1000, count=0)
    lines = big_lines(4, "throttled")
    created = submit(client, lines)
    started = time.monotonic()
    while time.monotonic() - started < 6:
        assert client.batches.retrieve(created.id).status in ("validating", "in_progress"), "gave up while throttled"
        time.sleep(0.5)
    refusals = sim.stats("embeddings")["statuses"].get("429", 0)
    assert refusals >= 2, sim.stats("embeddings")["statuses"]
    sim.http.delete("/_sim/faults").raise_for_status()
    done = poll(client, created.id, timeout=90, interval=0.25)[-1]
    assert done.status == "completed", done
    output, errors = outcome(client, done)
    assert errors == []
    assert_each_once_in_order(lines, output, errors)


def test_storage_restarted_mid_batch_repeats_and_loses_nothing(stack: Stack, client: openai.OpenAI, sim: Sim) -> None:
    # Every embeddings call takes 2 s, so chunks are in flight when Azurite goes down and comes back.
    survives_mid_batch(client, sim, "storage-restart", 2000, stack.restart_azurite, timeout=90)
