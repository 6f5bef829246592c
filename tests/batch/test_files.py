"""``/v1/files`` through the running local host (host + simulator + Azurite as real processes).

The official SDK uploads, lists, reads and deletes as its users would; httpx sends what the SDK
would refuse to (ambiguous forms, other content types, hostile ids). Each caller is named by its
function key (the local host, like Core Tools, does not check keys, but the gateway names callers
by a digest of theirs).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from devhost.stack import Stack
from shared.jobs.ids import new_file_id
from tests.security.conftest import start_stack

FILES_MAX_BYTES = 20_000
ALICE, BOB = "key-alice-files", "key-bob-files"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with start_stack({"FILES_MAX_BYTES": str(FILES_MAX_BYTES), "BATCH_MAX_LINES": "100"}) as running:
        yield running[0]


def sdk(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.host_url}/api/v1", api_key="unused", max_retries=0,
                         default_headers={"x-functions-key": key})


def raw(stack: Stack, key: str = ALICE, timeout: float = 30) -> httpx.Client:
    return httpx.Client(base_url=f"{stack.host_url}/api/v1", headers={"x-functions-key": key}, timeout=timeout)


def request_line(custom_id: str, url: str = "/v1/embeddings", model: str = "text-embedding-3-small",
                 **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": {"model": model, "input": "hi", **body}}


def jsonl(*lines: dict[str, Any] | bytes) -> bytes:
    return b"".join((item if isinstance(item, bytes) else json.dumps(item).encode()) + b"\n" for item in lines)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    error: dict[str, Any] = response.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error) and error["message"]
    return error


def upload(client: httpx.Client, content: bytes, **fields: Any) -> httpx.Response:
    return client.post("/files", data={"purpose": "batch", **fields}, files={"file": ("in.jsonl", content)})


def assert_looks_missing(client: openai.OpenAI, file_id: str) -> None:
    """The file answers as an unknown id would: retrieve and content 404, and no list shows it."""
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file_id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(file_id)
    assert file_id not in [f.id for f in client.files.list()]


def test_the_sdk_uploads_lists_reads_and_deletes_a_batch_file(stack: Stack) -> None:
    alice = sdk(stack, ALICE)
    content = jsonl(*(request_line(f"r{i}") for i in range(3)))
    created = alice.files.create(file=("requests.jsonl", io.BytesIO(content)), purpose="batch",
                                 expires_after={"anchor": "created_at", "seconds": 7200})
    assert created.id.startswith("file-") and len(created.id) == 37
    assert (created.object, created.purpose, created.filename, created.bytes) == (
        "file", "batch", "requests.jsonl", len(content))
    assert created.status == "processed" and created.expires_at == created.created_at + 7200
    assert abs(created.created_at - time.time()) < 60

    default = alice.files.create(file=("second.jsonl", io.BytesIO(content)), purpose="batch")
    assert default.expires_at == default.created_at + 30 * 24 * 3600  # OpenAI's default for batch files

    assert alice.files.retrieve(created.id) == created
    assert alice.files.content(created.id).read() == content  # stored as uploaded, byte for byte

    listed = [f.id for f in alice.files.list()]
    assert listed[:2] == [default.id, created.id]  # newest first
    assert [f.id for f in alice.files.list(order="asc")][-2:] == [created.id, default.id]
    assert [f.id for f in alice.files.list(purpose="batch_output")] == []
    page = alice.files.list(limit=1)
    assert [f.id for f in page.data] == [default.id] and page.has_more
    assert [f.id for f in page.get_next_page().data] == [created.id]  # the SDK's cursor (after=)

    deleted = alice.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    assert_looks_missing(alice, created.id)
    with pytest.raises(openai.NotFoundError):
        alice.files.delete(created.id)


def test_another_callers_file_looks_exactly_like_a_missing_one(stack: Stack) -> None:
    alice = sdk(stack, ALICE)
    content = jsonl(request_line("secret"))
    mine = alice.files.create(file=("mine.jsonl", io.BytesIO(content)), purpose="batch")
    missing = new_file_id()
    with raw(stack, BOB) as bob:
        for method, suffix in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
            theirs = error_of(bob.request(method, f"/files/{mine.id}{suffix}"), 404)
            nobodys = error_of(bob.request(method, f"/files/{missing}{suffix}"), 404)
            assert theirs["code"] == nobodys["code"] == "file_not_found"
            assert theirs["message"].replace(mine.id, "?") == nobodys["message"].replace(missing, "?")
        assert mine.id not in [f["id"] for f in bob.get("/files").json()["data"]]
        after = error_of(bob.get("/files", params={"after": mine.id}), 400)
        assert after["code"] == "invalid_query_parameter"
    assert alice.files.content(mine.id).read() == content  # Bob's delete did nothing


@pytest.mark.parametrize("path", [
    "/files/..", "/files/..%2F..%2Fjobs", "/files/file-..%2Fpoison", "/files/%2E%2E/content",
    "/files/file-" + "A" * 32, "/files/file-" + "0" * 31 + "%00", "/files/ejob_" + "0" * 32,
    "/files/file-" + "0" * 32 + "%2F..%2F..%2Fjobs/content",
])
def test_hostile_file_ids_are_not_found(stack: Stack, path: str) -> None:
    with raw(stack) as client:
        for method in ("GET",) if path.endswith("/content") else ("GET", "DELETE"):
            response = client.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
            if response.headers.get("content-type", "").startswith("application/json"):  # else the host's own 404:
                assert response.json()["error"]["code"] == "file_not_found"  # the path never reached a route


@pytest.mark.parametrize(("lines", "bad"), [
    ((request_line("a"), request_line("b"), request_line("a")), [(3, "duplicate_custom_id", "custom_id")]),
    ((request_line("a"), b'{"custom_id": "b", "custom_id": "c", "method": "POST", "url": "/v1/embeddings", '
                         b'"body": {"model": "text-embedding-3-small", "input": "x"}}'),
     [(2, "invalid_json_line", None)]),
    ((request_line("a", model="gpt-4.1-secret"),), [(1, "model_not_found", "body.model")]),
    ((request_line("a", model="gpt-4o-mini"),), [(1, "model_not_embedding", "body.model")]),
    ((request_line("a"), request_line("b", model="embed")), [(2, "mismatched_model", "body.model")]),
    ((request_line("a", url="/v1/chat/completions", model="gpt-4o-mini"), request_line("b", model="gpt-4o-mini")),
     [(2, "mismatched_url", "url")]),
    ((request_line("a", url="/chat/completions", model="gpt-4o-mini", stream=True),),
     [(1, "invalid_body", "body.stream")]),
    ((request_line("a"), b"", request_line("b"), b"{", request_line("b")),
     [(2, "invalid_json_line", None), (4, "invalid_json_line", None), (5, "duplicate_custom_id", "custom_id")]),
])
def test_a_bad_input_file_is_refused_naming_its_lines(stack: Stack, lines: tuple[Any, ...],
                                                      bad: list[tuple[int, str, str | None]]) -> None:
    alice = sdk(stack, ALICE)
    before = {f.id for f in alice.files.list()}
    with pytest.raises(openai.BadRequestError) as refused:
        alice.files.create(file=("bad.jsonl", io.BytesIO(jsonl(*lines))), purpose="batch")
    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == "invalid_batch_file" and error["param"] == "file"
    assert f"Line {bad[0][0]}:" in error["message"]
    assert [(e["line"], e["code"], e["param"]) for e in error["errors"]["data"]] == bad
    assert {f.id for f in alice.files.list()} == before  # nothing was stored


def test_files_over_the_limits_are_413(stack: Stack) -> None:
    line = json.dumps(request_line("r" * 400)).encode()  # unique ids don't matter: the size check comes first
    too_big = (line + b"\n") * (FILES_MAX_BYTES // len(line) + 1)
    with pytest.raises(openai.APIStatusError) as refused:
        sdk(stack, ALICE).files.create(file=("big.jsonl", io.BytesIO(too_big)), purpose="batch")
    assert refused.value.status_code == 413
    assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "file_too_large"
    with raw(stack) as client:
        # Declared far over the limit: refused before the body is read.
        huge = error_of(client.post("/files", content=b"x" * (FILES_MAX_BYTES + 100_000),
                                    headers={"content-type": "multipart/form-data; boundary=b"}), 413)
        assert huge["code"] == "request_too_large" and "FILES_MAX_BYTES" in huge["message"]
        many = jsonl(*(request_line(f"r{i}") for i in range(101)))  # BATCH_MAX_LINES=100
        assert len(many) < FILES_MAX_BYTES
        error = error_of(upload(client, many), 400)
        assert [(e["line"], e["code"]) for e in error["errors"]["data"]] == [(101, "too_many_lines")]


def test_a_file_with_many_bad_lines_names_the_first_ten(stack: Stack) -> None:
    with raw(stack) as client:
        error = error_of(upload(client, b"{\n" * 5000), 400)
    assert error["code"] == "invalid_batch_file"
    assert [e["line"] for e in error["errors"]["data"]] == list(range(1, 11))


def _form(*parts: tuple[str, str | None, bytes], boundary: str = "XyZ") -> tuple[bytes, dict[str, str]]:
    """A multipart body as a hostile client writes it: any parts, in any order, repeated."""
    body = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


GOOD = jsonl(request_line("a"))


@pytest.mark.parametrize(("parts", "param"), [
    ((("purpose", None, b"batch"), ("purpose", None, b"batch"), ("file", "a.jsonl", GOOD)), "purpose"),
    ((("purpose", None, b"batch"), ("file", "a.jsonl", GOOD), ("file", "b.jsonl", GOOD)), "file"),
    ((("file", "a.jsonl", GOOD), ("purpose", None, b"batch"), ("purpose", None, b"fine-tune")), "purpose"),
    ((("purpose", None, b"batch"), ("file", "a.jsonl", GOOD), ("expires_after[seconds]", None, b"7200"),
      ("expires_after[seconds]", None, b"3600"), ("expires_after[anchor]", None, b"created_at")),
     "expires_after[seconds]"),
    ((("purpose", None, b"batch"), ("Purpose", None, b"fine-tune"), ("file", "a.jsonl", GOOD)), "Purpose"),
    ((("purpose", None, b"batch"), ("file", "a.jsonl", GOOD), ("model", None, b"gpt-4o-mini")), "model"),
])
def test_ambiguous_or_unknown_form_fields_are_refused(stack: Stack, parts: tuple[Any, ...], param: str) -> None:
    body, headers = _form(*parts)
    with raw(stack) as client:
        before = client.get("/files").json()["data"]
        error = error_of(client.post("/files", content=body, headers=headers), 400)
        assert (error["code"], error["param"]) == ("invalid_multipart", param)
        assert client.get("/files").json()["data"] == before  # nothing was stored


def test_what_is_not_a_complete_multipart_form_is_refused(stack: Stack) -> None:
    with raw(stack) as client:
        as_json = error_of(client.post("/files", json={"purpose": "batch", "file": GOOD.decode()}), 400)
        assert as_json["code"] == "invalid_multipart" and "multipart/form-data" in as_json["message"]
        no_boundary = error_of(client.post("/files", content=b"x", headers={"content-type": "multipart/form-data"}),
                               400)
        assert no_boundary["code"] == "invalid_multipart"
        body, headers = _form(("purpose", None, b"batch"), ("file", "a.jsonl", GOOD))
        cut = error_of(client.post("/files", content=body[:-12], headers=headers), 400)
        assert cut["code"] == "invalid_multipart"
        garbage = error_of(client.post("/files", content=b"--XyZ\r\nnot a header line\r\n\r\n",
                                       headers=headers), 400)
        assert garbage["code"] == "invalid_multipart"
        long_body, long_headers = _form(("purpose", None, b"batch"), ("file", "a.jsonl", GOOD), boundary="b" * 2000)
        too_long = error_of(client.post("/files", content=long_body, headers=long_headers), 400)  # not a 500
        assert too_long["code"] == "invalid_multipart"
        no_file, headers = _form(("purpose", None, b"batch"))
        assert error_of(client.post("/files", content=no_file, headers=headers), 400)["code"] == \
            "missing_required_parameter"


def test_purpose_and_expiry_are_checked(stack: Stack) -> None:
    alice = sdk(stack, ALICE)
    with pytest.raises(openai.BadRequestError) as wrong_purpose:
        alice.files.create(file=("a.jsonl", io.BytesIO(GOOD)), purpose="fine-tune")
    assert isinstance(wrong_purpose.value.body, dict)
    assert (wrong_purpose.value.body["code"], wrong_purpose.value.body["param"]) == ("invalid_file_purpose", "purpose")
    for seconds in (3599, 2_592_001):
        with pytest.raises(openai.UnprocessableEntityError) as out_of_range:
            alice.files.create(file=("a.jsonl", io.BytesIO(GOOD)), purpose="batch",
                               expires_after={"anchor": "created_at", "seconds": seconds})
        assert isinstance(out_of_range.value.body, dict)
        assert out_of_range.value.body["param"] == "expires_after[seconds]"
    with raw(stack) as client:
        error = error_of(upload(client, GOOD, **{"expires_after[seconds]": "3600"}), 400)
        assert (error["code"], error["param"]) == ("missing_required_parameter", "expires_after[anchor]")


def test_an_expired_file_is_gone(stack: Stack) -> None:
    from azure.data.tables import TableClient, UpdateMode

    alice = sdk(stack, ALICE)
    created = alice.files.create(file=("soon.jsonl", io.BytesIO(GOOD)), purpose="batch")
    assert stack.storage_connection_string
    with TableClient.from_connection_string(stack.storage_connection_string, "embeddingjobs") as table:
        table.update_entity({"PartitionKey": created.id, "RowKey": "file", "expires_at": time.time() - 1},
                            mode=UpdateMode.MERGE)
    assert_looks_missing(alice, created.id)


def test_a_storage_outage_is_a_503_with_retry_after(stack: Stack) -> None:
    created = sdk(stack, ALICE).files.create(file=("a.jsonl", io.BytesIO(GOOD)), purpose="batch")
    with raw(stack, timeout=120) as client:  # the storage SDK's own retries come first
        stack.stop_azurite()
        try:
            answers = [upload(client, GOOD), client.get(f"/files/{created.id}/content")]  # a write, a read
        finally:
            stack.restart_azurite()
        for answer in answers:
            error = error_of(answer, 503)
            assert (error["type"], error["code"]) == ("server_error", "storage_unavailable")
            assert int(answer.headers["retry-after"]) > 0
        assert client.get(f"/files/{created.id}/content").content == GOOD

