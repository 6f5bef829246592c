"""End to end through the local stack: Azurite, the simulator and the Functions host as processes.

Each test drives the system only from outside (HTTP, the queue, blobs) and ends with either
complete, ordered, non-duplicated results, checked against the simulator's own synchronous
/embeddings answers, or a failed job with a readable reason.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from shared.jobs import client, messages
from shared.jobs.ids import new_job_id
from tests.jobs.conftest import JobStack
from tests.jobs.harness import SIMULATOR_URL, check_results, wait_for_job_end

pytestmark = pytest.mark.timeout(180)
QUEUE = "embedding-jobs"
CONTAINER = "embedding-jobs"


def texts(n: int, prefix: str = "e2e text") -> list[str]:
    return [f"{prefix} {i}" for i in range(n)]


def fetch_results(stack: JobStack, job_id: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    with stack.http.stream("GET", f"/api/v1/embeddings/jobs/{job_id}/results") as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines.extend(json.loads(line) for line in response.iter_lines() if line)
    return lines


def verify(stack: JobStack, job_id: str, inputs: list[Any], **kwargs: Any) -> None:
    SIMULATOR_URL["url"] = stack.sim.url
    check_results(fetch_results(stack, job_id), inputs, **kwargs)


def send_raw(stack: JobStack, body: str) -> None:
    with QueueClient.from_connection_string(stack.connection_string, QUEUE) as queue:
        queue.send_message(base64.b64encode(body.encode()).decode())


def test_job_over_http(e2e: JobStack) -> None:
    inputs: list[Any] = [*texts(3000), {"id": "doc-x", "text": "an input with an id"}, ""]
    response = e2e.http.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": inputs, "dimensions": 64})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/v1/embeddings/jobs/{job['id']}"
    assert job["status"] == "queued" and job["counts"]["total"] == len(inputs)
    done = wait_for_job_end(e2e.http, job["id"])
    assert done["status"] == "succeeded", done
    assert done["counts"] == {"total": 3002, "embedded": 3001, "failed": 1}
    assert done["usage"]["prompt_tokens"] > 0
    assert e2e.sim.stats()["counts"]["embeddings"] == 2  # 3002 inputs: two requests
    verify(e2e, job["id"], inputs, dims=64, failed={3001: "empty_input"})


def test_http_errors_are_openai_shaped(e2e: JobStack) -> None:
    cases = [
        ({"model": "embed"}, 400, "missing_required_parameter"),
        ({"model": "gpt-unknown", "input": ["x"]}, 404, "model_not_found"),
        ({"model": "embed", "input": []}, 422, "invalid_value"),
        ({"model": "embed", "input": ["x"], "dimensions": "8"}, 422, "invalid_value"),
    ]
    for body, status, code in cases:
        response = e2e.http.post("/api/v1/embeddings/jobs", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    assert e2e.http.get("/api/v1/embeddings/jobs/not-a-job").status_code == 404
    assert e2e.http.get(f"/api/v1/embeddings/jobs/{new_job_id()}").status_code == 404
    assert e2e.http.delete(f"/api/v1/embeddings/jobs/{new_job_id()}").status_code == 405


def test_job_enqueued_with_the_helper(e2e: JobStack) -> None:
    inputs = [{"id": f"k{i}", "text": t} for i, t in enumerate(texts(2500, "helper"))]
    job_id = client.submit_job_sync(inputs, model="embed", dimensions=16, owner="anonymous",
                                    connection_string=e2e.connection_string)
    done = wait_for_job_end(e2e.http, job_id)
    assert done["counts"] == {"total": 2500, "embedded": 2500, "failed": 0}
    verify(e2e, job_id, inputs, dims=16)


def test_job_whose_inputs_come_from_a_blob(e2e: JobStack) -> None:
    inputs: list[Any] = [*texts(100, "blob"), "x " * 20000]
    with BlobServiceClient.from_connection_string(e2e.connection_string) as service:
        container = service.get_container_client(CONTAINER)
        if not container.exists():
            container.create_container()
        container.upload_blob("inputs/batch-1.jsonl", "\n".join(json.dumps(v) for v in inputs), overwrite=True)
    job_id = client.submit_job_sync(model="embed", input_blob=messages.BlobRef(container=CONTAINER,
                                                                              name="inputs/batch-1.jsonl"),
                                    dimensions=8, owner="anonymous", connection_string=e2e.connection_string)
    done = wait_for_job_end(e2e.http, job_id)
    assert done["counts"] == {"total": 101, "embedded": 100, "failed": 1}
    verify(e2e, job_id, inputs, dims=8, failed={100: "input_too_long"})


def test_poison_message_fails_its_job_and_is_kept(e2e: JobStack) -> None:
    job_id = new_job_id()
    send_raw(e2e, json.dumps({"schema": "embedding-job/v1", "type": "job", "id": job_id, "model": "embed",
                              "input": "not a list", "owner": "anonymous"}))
    done = wait_for_job_end(e2e.http, job_id, timeout=30)
    assert done["status"] == "failed" and done["error"]["code"] == "invalid_message"
    assert "input" in done["error"]["message"]
    deadline = time.monotonic() + 15
    while "poison_blob" not in done["error"] and time.monotonic() < deadline:
        time.sleep(0.25)
        done = wait_for_job_end(e2e.http, job_id)
    kept = done["error"]["poison_blob"]
    with BlobServiceClient.from_connection_string(e2e.connection_string) as service:
        body = service.get_blob_client(kept["container"], kept["name"]).download_blob().readall()
    assert json.loads(body)["id"] == job_id
    results = e2e.http.get(f"/api/v1/embeddings/jobs/{job_id}/results")
    assert results.status_code == 409 and results.json()["error"]["code"] == "job_not_succeeded"


def test_duplicated_message_gives_one_set_of_results(e2e: JobStack) -> None:
    inputs = texts(1500, "dup")
    message = client.build_message(job_id=new_job_id(), model="embed", inputs=inputs[:10], dimensions=8,
                                   owner="anonymous")
    body = messages.to_json(message)
    for _ in range(3):
        send_raw(e2e, body)
    done = wait_for_job_end(e2e.http, message.id)
    assert done["counts"] == {"total": 10, "embedded": 10, "failed": 0}
    time.sleep(1.0)  # let the duplicates finish too, then look again
    assert wait_for_job_end(e2e.http, message.id)["counts"] == done["counts"]
    verify(e2e, message.id, inputs[:10], dims=8)


def _wait_in_flight(stack: JobStack, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while stack.sim.stats()["in_flight"] == 0:
        if time.monotonic() > deadline:
            raise TimeoutError("no embedding request reached the simulator")
        time.sleep(0.05)


def survives_mid_job(e2e: JobStack, prefix: str, request_ms: int, disrupt: Callable[[], None],
                     timeout: float) -> None:
    """A 6000-input job, disrupted while chunks are in flight (each request takes ``request_ms``), ends complete."""
    e2e.sim.fault({"kind": "slow_first_byte", "path": "embeddings", "ms": request_ms, "count": 100})
    inputs = texts(6000, prefix)
    response = e2e.http.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": inputs, "dimensions": 8})
    job_id = response.json()["id"]
    _wait_in_flight(e2e)
    disrupt()
    done = wait_for_job_end(e2e.http, job_id, timeout=timeout)
    assert done["status"] == "succeeded", done
    assert done["counts"] == {"total": 6000, "embedded": 6000, "failed": 0}
    verify(e2e, job_id, inputs, dims=8)


def test_worker_killed_mid_job(e2e: JobStack) -> None:
    def kill_and_restart() -> None:
        e2e.stack.kill_host()
        e2e.stack.restart_host()

    survives_mid_job(e2e, "killed", 3000, kill_and_restart, timeout=60)


def test_azurite_restarted_mid_job(e2e: JobStack) -> None:
    survives_mid_job(e2e, "storage restart", 2000, e2e.stack.restart_azurite, timeout=90)


def test_tpm_limit_paces_the_job_and_it_still_completes(e2e: JobStack) -> None:
    # Chunks of 2048 x 5 = 10,240 tokens (and one of 500) against 25,000 TPM: two big ones and the
    # small one fit the first minute; the third must wait for the window to slide (~60 s), handed
    # back to the queue meanwhile. The job ends complete. The pacer counts its own sends until they
    # leave the window, so it waits instead of probing: at most the one 429 of chunks sent together
    # before the first answer told the limit.
    e2e.sim.configure(tpm=25_000)
    inputs = [f"tpm {i:06d} words xx" for i in range(2048 * 3 + 100)]
    response = e2e.http.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": inputs, "dimensions": 8})
    job_id = response.json()["id"]
    done = wait_for_job_end(e2e.http, job_id, timeout=150)
    stats = e2e.sim.stats()
    assert done["status"] == "succeeded", done
    assert stats["statuses"].get("429", 0) <= 1
    # Every input is sent once: the successful calls carry the inputs' bytes once, plus each body's
    # envelope. A chunk that does not fit beside what the window holds is cut to the room left, so
    # there may be a call or two more than the 4 chunks, never a re-send.
    ok = [record for record in e2e.sim.requests("embeddings") if record["status"] == 200]
    assert len(ok) == stats["statuses"].get("200", 0) and 4 <= len(ok) <= 6
    payload = sum(len(json.dumps(text)) + 1 for text in inputs)
    assert payload <= sum(record["body_size"] for record in ok) <= payload + 100 * len(ok)
    e2e.sim.configure(tpm=0)
    verify(e2e, job_id, inputs, dims=8)


def test_results_are_readable_straight_from_the_blobs(e2e: JobStack) -> None:
    # What schemas/README.md tells a back end: the blobs under the prefix in name order, one per chunk.
    inputs = texts(2048 + 10, "from storage")
    response = e2e.http.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": inputs, "dimensions": 4})
    job_id = response.json()["id"]
    done = wait_for_job_end(e2e.http, job_id)
    ref = done["results"]
    with BlobServiceClient.from_connection_string(e2e.connection_string) as service:
        container = service.get_container_client(ref["container"])
        names = sorted(blob.name for blob in container.list_blobs(name_starts_with=ref["prefix"]))
        assert names == [f"{ref['prefix']}000000.jsonl", f"{ref['prefix']}000001.jsonl"]
        data = b"".join(container.get_blob_client(name).download_blob().readall() for name in names)
    assert [json.loads(line)["index"] for line in data.splitlines()] == list(range(len(inputs)))


def test_results_of_a_running_job_are_the_finished_chunks(e2e: JobStack) -> None:
    # One embedding request answers at once, the others only after 8 s: one chunk finishes first.
    e2e.sim.fault([{"kind": "slow_first_byte", "path": "embeddings", "ms": 200, "count": 1},
                   {"kind": "slow_first_byte", "path": "embeddings", "ms": 8000, "count": 100}])
    inputs = texts(2 * 2048 + 100, "live")  # three chunks: 2048, 2048, 100
    job_id = e2e.http.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": inputs,
                                                            "dimensions": 8}).json()["id"]
    url = f"/api/v1/embeddings/jobs/{job_id}/results"
    deadline = time.monotonic() + 30
    while True:
        early = e2e.http.get(url)
        assert early.status_code == 200, early.text
        lines = [json.loads(line) for line in early.text.splitlines()]
        if lines or time.monotonic() > deadline:
            break
        assert early.headers["x-job-results"] == "partial"
        time.sleep(0.1)
    assert (early.headers["x-job-status"], early.headers["x-job-results"]) == ("running", "partial")
    indexes = [line["index"] for line in lines]
    chunks = ([*range(0, 2048)], [*range(2048, 4096)], [*range(4096, 4196)])
    assert indexes in chunks, indexes[:5]  # exactly one whole chunk, in input order
    assert all(len(line["embedding"]) == 8 for line in lines)

    done = wait_for_job_end(e2e.http, job_id, timeout=60)
    assert done["status"] == "succeeded", done
    final = e2e.http.get(url)
    assert (final.headers["x-job-status"], final.headers["x-job-results"]) == ("succeeded", "complete")
    final_lines = [json.loads(line) for line in final.text.splitlines()]
    assert [line["index"] for line in final_lines] == list(range(len(inputs)))
    assert [final_lines[i] for i in indexes] == lines  # what was read early is what the job ends with
    verify(e2e, job_id, inputs, dims=8)


def test_cancel_over_http_keeps_one_line_per_input(e2e: JobStack) -> None:
    # Every embedding request takes 2 s, so the job is still running when it is cancelled.
    e2e.sim.fault({"kind": "slow_first_byte", "path": "embeddings", "ms": 2000, "count": 100})
    inputs = texts(5000, "cancelled")
    job_id = e2e.http.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": inputs,
                                                            "dimensions": 8}).json()["id"]
    _wait_in_flight(e2e)
    cancelled = e2e.http.post(f"/api/v1/embeddings/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    lines = fetch_results(e2e, job_id)
    assert [line["index"] for line in lines] == list(range(len(inputs)))
    assert all("embedding" in line or line["error"]["code"] == "cancelled" for line in lines)
    embedded = sum("embedding" in line for line in lines)
    view = e2e.http.get(f"/api/v1/embeddings/jobs/{job_id}").json()
    assert view["counts"] == {"total": len(inputs), "embedded": embedded, "failed": len(inputs) - embedded}
    assert e2e.http.post(f"/api/v1/embeddings/jobs/{job_id}/cancel").json()["status"] == "cancelled"


def test_results_encoding_format_through_the_host(e2e: JobStack) -> None:
    import array

    response = e2e.http.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": texts(3), "dimensions": 8})
    job_id = response.json()["id"]
    assert wait_for_job_end(e2e.http, job_id)["status"] == "succeeded"
    url = f"/api/v1/embeddings/jobs/{job_id}/results"
    floats = [json.loads(line) for line in e2e.http.get(url).text.splitlines()]
    packed = [json.loads(line) for line in e2e.http.get(url, params={"encoding_format": "base64"}).text.splitlines()]
    assert [base64.b64decode(line["embedding"]) for line in packed] == \
        [array.array("f", line["embedding"]).tobytes() for line in floats]
    for query, code in (({"encoding_format": "binary"}, "invalid_query_parameter"),
                        ({"format": "x"}, "unknown_parameter")):
        refused = e2e.http.get(url, params=query)
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, code), refused.text


def test_the_job_list_through_the_host_is_the_callers_own_in_pages(e2e: JobStack) -> None:
    mine = {"x-functions-key": "list-owner-key"}
    ids = [e2e.http.post("/api/v1/embeddings/jobs", headers=mine,
                         json={"model": "embed", "input": texts(1, f"list {n}"), "dimensions": 8}).json()["id"]
           for n in range(3)]
    theirs = e2e.http.post("/api/v1/embeddings/jobs", headers={"x-functions-key": "list-other-key"},
                           json={"model": "embed", "input": texts(1), "dimensions": 8}).json()["id"]
    first = e2e.http.get("/api/v1/embeddings/jobs", headers=mine, params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [job["id"] for job in page["data"]] == ids[::-1][:2]  # newest first
    rest = e2e.http.get("/api/v1/embeddings/jobs", headers=mine, params={"limit": 2, "after": page["last_id"]}).json()
    assert [job["id"] for job in rest["data"]] == ids[:1] and rest["has_more"] is False
    # Another caller's id is no cursor: it reveals nothing about that job.
    refused = e2e.http.get("/api/v1/embeddings/jobs", headers=mine, params={"after": theirs})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "invalid_query_parameter"), refused.text
    for query in ({"limit": 0}, {"limit": 101}, {"page": 1}):
        assert e2e.http.get("/api/v1/embeddings/jobs", headers=mine, params=query).status_code == 400, query
