"""Attacks on the embedding-job worker and the job routes, through the running local host.

The attacker can write queue messages (a producer gone bad) or call the job routes with its own
function key. What must hold: the worker reads only job data and says the same thing about a
forbidden blob as about a missing one; a message fails only the job it provably belongs to; a
chunk's model is checked again; a job is visible to its creator only and spends its creator's
token budget (paced, not refused); a storage outage is a 503 with ``retry-after``.
"""

from __future__ import annotations

import array
import base64
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from devhost.stack import Stack
from shared.jobs.ids import new_job_id
from tests.jobs.harness import wait_for_job_end
from tests.security.conftest import Sim, start_stack

pytestmark = pytest.mark.timeout(400)

LIMIT = 3000  # CALLER_TOKENS_PER_MINUTE for this module's stack
QUEUE, CONTAINER, TABLE = "embedding-jobs", "embedding-jobs", "embeddingjobs"
SECRET = "salary of employee 7: 250000"
KEY_A, KEY_B, KEY_C, KEY_D = "key-of-team-a", "key-of-team-b", "key-of-team-c", "key-of-team-d"


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[Stack, Sim]]:
    with start_stack({"CALLER_TOKENS_PER_MINUTE": str(LIMIT)}) as (stack, sim):
        yield stack, sim


@pytest.fixture
def stack(running: tuple[Stack, Sim]) -> Stack:
    running[1].reset()
    return running[0]


@pytest.fixture
def sim(running: tuple[Stack, Sim]) -> Sim:
    return running[1]


def http(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.host_url, timeout=60, headers={"x-functions-key": key})


def conn(stack: Stack) -> str:
    assert stack.storage_connection_string
    return stack.storage_connection_string


def send_raw(stack: Stack, body: bytes) -> None:
    with QueueClient.from_connection_string(conn(stack), QUEUE) as queue:
        # In Azure the queue exists from deployment (infra/core/storage.bicep); locally the host's
        # listener creates it a moment after the host answers, and a test may come first.
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(base64.b64encode(body).decode())


def job_message(job_id: str, **fields: Any) -> bytes:
    return json.dumps({"schema": "embedding-job/v1", "type": "job", "id": job_id, "model": "embed",
                       **fields}).encode()


def job_row(stack: Stack, job_id: str, timeout: float = 40) -> dict[str, Any]:
    """The job's row as a back end reads it from storage, once the job has ended."""
    deadline = time.monotonic() + timeout
    with TableServiceClient.from_connection_string(conn(stack)) as service:
        table = service.get_table_client(TABLE)
        while True:
            try:
                row = dict(table.get_entity(job_id, "job"))
            except Exception:
                row = {}
            if row.get("status") in ("succeeded", "failed") or time.monotonic() > deadline:
                return row
            time.sleep(0.25)


def results(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/embeddings/jobs/{job_id}/results")
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


def ensure_storage(stack: Stack) -> None:
    """The jobs container and table exist (the host creates them on first use; a test may come first)."""
    with BlobServiceClient.from_connection_string(conn(stack)) as blobs:
        container = blobs.get_container_client(CONTAINER)
        if not container.exists():
            container.create_container()
    with TableServiceClient.from_connection_string(conn(stack)) as tables:
        tables.create_table_if_not_exists(TABLE)


def test_input_blob_outside_job_data_is_refused_exactly_like_a_missing_one(stack: Stack, sim: Sim) -> None:
    ensure_storage(stack)
    victim = new_job_id()
    with BlobServiceClient.from_connection_string(conn(stack)) as service:
        private = service.get_container_client("privatedata")
        if not private.exists():
            private.create_container()
        private.upload_blob("hr.jsonl", json.dumps({"id": "employee-7", "text": SECRET}) + "\n", overwrite=True)
        jobs = service.get_container_client(CONTAINER)
        # Another job's claim check and a blob outside inputs/ in the jobs container itself.
        jobs.upload_blob(f"jobs/{victim}/input.jsonl", json.dumps(SECRET) + "\n", overwrite=True)
        jobs.upload_blob("hr.jsonl", json.dumps(SECRET) + "\n", overwrite=True)
    blob_port = stack.azurite_ports[0] if stack.azurite_ports else 10000
    attacks: list[dict[str, str]] = [
        {"container": "privatedata", "name": "hr.jsonl"},
        {"name": "../privatedata/hr.jsonl"},
        {"name": "inputs/../../privatedata/hr.jsonl"},
        {"name": "inputs/%2e%2e/%2e%2e/privatedata/hr.jsonl"},
        {"name": "inputs/..%2fhr.jsonl"},
        {"name": "inputs\\..\\hr.jsonl"},
        {"name": "hr.jsonl"},
        {"name": f"jobs/{victim}/input.jsonl"},
        {"name": "https://otheraccount.blob.core.windows.net/privatedata/hr.jsonl"},
        {"name": f"http://127.0.0.1:{blob_port}/devstoreaccount1/privatedata/hr.jsonl"},
    ]
    missing = {"name": "inputs/no-such-file.jsonl"}
    ids = {json.dumps(ref): new_job_id() for ref in [*attacks, missing]}
    for ref, job_id in ids.items():
        send_raw(stack, job_message(job_id, input_blob=json.loads(ref)))
    rows = {ref: job_row(stack, job_id) for ref, job_id in ids.items()}
    expected = rows[json.dumps(missing)]
    assert expected["status"] == "failed", expected
    for ref, row in rows.items():
        assert row.get("status") == "failed", (ref, row)
        assert (row["error_code"], row["error"]) == (expected["error_code"], expected["error"]), ref
        assert "hr" not in row["error"] and "privatedata" not in row["error"]
    assert sim.stats()["counts"].get("embeddings", 0) == 0  # nothing was read, so nothing was sent


def test_a_chunk_whose_model_is_not_allowed_never_reaches_the_upstream(stack: Stack, sim: Sim) -> None:
    # A job row and chunk blob as the planner would write them (a row from before tokens existed, so
    # the chunk proves its job), and a chunk message naming a deployment OPENAI_MODELS does not allow.
    ensure_storage(stack)
    job_id, forbidden = new_job_id(), "gpt-4o-mini-private-finetune"
    with TableServiceClient.from_connection_string(conn(stack)) as service:
        service.get_table_client(TABLE).create_entity({"PartitionKey": job_id, "RowKey": "job", "status": "running",
                                                      "model": "embed", "chunks": 1, "total": 1})
    with BlobServiceClient.from_connection_string(conn(stack)) as service:
        service.get_blob_client(CONTAINER, f"jobs/{job_id}/chunks/000000.jsonl").upload_blob(
            json.dumps({"index": 0, "text": "hello"}) + "\n", overwrite=True)
    send_raw(stack, json.dumps({"schema": "embedding-job/v1", "type": "chunk", "id": job_id, "chunk": 0,
                                "start": 0, "count": 1, "model": forbidden}).encode())
    row = job_row(stack, job_id)
    assert row.get("status") == "failed" and row["error_code"] == "model_not_allowed", row
    assert [r for r in sim.requests("embeddings") if r["model"] == forbidden] == []


def test_a_garbage_message_naming_a_running_job_leaves_it_alone(stack: Stack, sim: Sim) -> None:
    sim.fault(kind="slow_first_byte", path="embeddings", ms=2500, count=5)
    inputs = [f"team a text {i}" for i in range(30)]
    with http(stack, KEY_A) as owner:
        submitted = owner.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": inputs, "dimensions": 8})
        assert submitted.status_code == 202, submitted.text
        victim = submitted.json()["id"]
        deadline = time.monotonic() + 30
        while sim.stats()["in_flight"] == 0:  # the job is running: its chunk is at the upstream
            assert time.monotonic() < deadline, "the job never reached the upstream"
            time.sleep(0.05)
        chunk = {"schema": "embedding-job/v1", "type": "chunk", "id": victim, "chunk": 0, "start": 0,
                 "count": len(inputs), "model": "text-embedding-3-small"}
        garbage = [
            b"garbage mentioning " + victim.encode(),
            json.dumps({"id": victim, "type": "chunk", "junk": True}).encode(),
            job_message(victim, model="not-an-allowed-model", input=["x"]),
            job_message(victim, input=["hijacked input"]),
            json.dumps({**chunk, "dimensions": 4}).encode(),
            json.dumps({**chunk, "token": "A" * 32}).encode(),
        ]
        for body in garbage:
            send_raw(stack, body)
        done = wait_for_job_end(owner, victim, timeout=90)
        assert done["status"] == "succeeded", done
        assert done["counts"] == {"total": 30, "embedded": 30, "failed": 0}
        lines = results(owner, victim)
    assert [line["index"] for line in lines] == list(range(30))
    assert all(len(array.array("f", line["embedding"])) == 8 for line in lines)  # no forged 4-d vectors
    # Every dropped message was logged with a reason, none of them failing the job.
    assert stack.host_log is not None
    deadline = time.monotonic() + 10
    while True:
        logged = [line for line in stack.host_log.read_text(errors="replace").splitlines()
                  if victim in line and ("message_dropped" in line or "message_rejected" in line)]
        if len(logged) >= len(garbage) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert len(logged) >= len(garbage), logged
    assert all('"fails_job": false' in line and '"reason"' in line for line in logged), logged


def test_another_caller_cannot_see_a_job(stack: Stack) -> None:
    with http(stack, KEY_A) as owner, http(stack, KEY_B) as other:
        job_id = owner.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": ["private text"]}).json()["id"]
        assert wait_for_job_end(owner, job_id)["status"] == "succeeded"
        assert len(results(owner, job_id)) == 1
        unknown = new_job_id()
        for path in ("", "/results"):
            theirs = other.get(f"/api/v1/embeddings/jobs/{job_id}{path}")
            nobody = other.get(f"/api/v1/embeddings/jobs/{unknown}{path}")
            assert theirs.status_code == nobody.status_code == 404, theirs.text
            assert theirs.json()["error"]["code"] == nobody.json()["error"]["code"] == "job_not_found"
            assert theirs.json()["error"]["message"].replace(job_id, unknown) == nobody.json()["error"]["message"]
        anonymous = httpx.get(f"{stack.host_url}/api/v1/embeddings/jobs/{job_id}", timeout=30)
        assert anonymous.status_code == 404


def test_a_job_is_charged_to_its_submitter_and_paced_within_its_budget(stack: Stack, sim: Sim) -> None:
    # 150 texts of 30 simulator tokens: 4500 tokens, one and a half of the submitter's 3000-token
    # minute. The job must run within that budget (part now, the rest as the window slides), its
    # tokens must count against the submitter's own later requests, and another caller's must not.
    inputs = [f"doc {i:03d} " + "abcdefghijklmnopqrstuvwxy " * 4 + "end." * 2 for i in range(150)]
    assert all(len(text) == 120 for text in inputs)
    with http(stack, KEY_C) as payer, http(stack, KEY_D) as bystander:
        job_id = payer.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": inputs,
                                                             "dimensions": 8}).json()["id"]
        deadline = time.monotonic() + 30
        while sim.stats()["counts"].get("embeddings", 0) == 0:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        time.sleep(5.0)
        running = payer.get(f"/api/v1/embeddings/jobs/{job_id}").json()
        spent = running["usage"]["prompt_tokens"]
        assert running["status"] == "running" and running["counts"]["embedded"] < len(inputs), running
        assert 0 < spent <= LIMIT * 1.2, running  # about one minute's budget, not the whole job at once
        own = payer.post("/api/v1/embeddings", json={"model": "embed", "input": "after my job"})
        theirs = bystander.post("/api/v1/embeddings", json={"model": "embed", "input": "unrelated"})
        assert theirs.status_code == 200, theirs.text
        their_remaining = int(theirs.headers["x-caller-ratelimit-remaining-tokens"])
        assert their_remaining > LIMIT - 100
        if own.status_code == 429:
            assert own.json()["error"]["code"] == "caller_token_limit_exceeded" and "retry-after" in own.headers
        else:
            assert own.status_code == 200, own.text
            # The window is a sliding minute (this minute's bucket plus last minute's, weighted by how
            # much of it is still inside): everything the job spent happened in the last few seconds,
            # so it weighs at least (far more than) a third even when a minute boundary fell in between.
            assert int(own.headers["x-caller-ratelimit-remaining-tokens"]) <= their_remaining - spent // 3
        done = wait_for_job_end(payer, job_id, timeout=240)
    assert done["status"] == "succeeded" and done["counts"]["embedded"] == len(inputs), done
    assert done["usage"]["prompt_tokens"] == 150 * 30  # more than a minute's budget, and it completed


def test_storage_outage_on_job_routes_is_a_503_with_retry_after(stack: Stack) -> None:
    with http(stack, KEY_A) as client:
        job_id = client.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": ["x"]}).json()["id"]
        wait_for_job_end(client, job_id)
        stack.stop_azurite()
        try:
            answers = [
                client.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": ["y"]}),
                client.get(f"/api/v1/embeddings/jobs/{job_id}"),
                client.get(f"/api/v1/embeddings/jobs/{job_id}/results"),
            ]
        finally:
            stack.restart_azurite()
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) > 0
        assert answer.headers["x-request-id"]
        error = answer.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert (error["type"], error["code"]) == ("server_error", "storage_unavailable")
