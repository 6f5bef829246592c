"""``/v1/files`` refereed by Azure's own OpenAPI description of the v1 API (``../shared/specs/``).

Every JSON body the files routes answer, produced by the real code path (the local host +
simulator + Azurite as real processes, the official SDK or httpx as the caller), must validate
against the schema the document gives for that operation: ``AzureOpenAIFile``,
``AzureListFilesResponse`` and ``OpenAI.DeleteFileResponse``. The upload form is judged the other
way round: what ``AzureCreateFileRequestMultiPart`` describes must be accepted, in each spelling a
client may send it.

Where the gateway deliberately differs from the document, the difference is named here, once:

* an empty list answers ``first_id``/``last_id`` ``null`` (OpenAI's answer, which the SDKs' cursor
  pages read); the document declares them required strings, with nothing to put in them;
* ``expires_after`` is optional (the document marks it required; OpenAI's SDK and Azure's own docs
  treat it as optional), and ``purpose`` takes only ``batch`` (the gateway hosts batch inputs only).

Without the document the tests skip locally and fail under CI, like the simulator's contract tests.
"""

from __future__ import annotations

import copy
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from devhost.stack import Stack
from tests.batch.test_batch_object import assert_openai_batch
from tests.security.conftest import start_stack
from tests.simulator.openapi_contract import Spec, load_spec_or_skip

pytestmark = pytest.mark.timeout(180)

EMBED = "text-embedding-3-small"
ALICE, BOB = "key-files-spec-alice", "key-files-spec-bob"
FILE_ID = "file-" + "2" * 32
UPLOAD = "AzureCreateFileRequestMultiPart"
# Azure's documented range for a batch file's expires_after (14 to 30 days, "Upload batch file" in
# Azure OpenAI's global batch how-to); OpenAI's range (3600 s to 30 days) holds it.
AZURE_MIN_SECONDS, AZURE_MAX_SECONDS = 1_209_600, 2_592_000
OPENAI_MIN_SECONDS = 3600


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec_or_skip()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with start_stack() as running:
        yield running[0]


def sdk(stack: Stack, key: str = ALICE) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.host_url}/api/v1", api_key="unused", max_retries=0,
                         default_headers={"x-functions-key": key})


def raw(stack: Stack, key: str = ALICE) -> httpx.Client:
    return httpx.Client(base_url=f"{stack.host_url}/api/v1", headers={"x-functions-key": key}, timeout=30)


def requests_file(count: int = 2, prefix: str = "r") -> bytes:
    return b"".join(json.dumps({"custom_id": f"{prefix}{n}", "method": "POST", "url": "/v1/embeddings",
                                "body": {"model": EMBED, "input": f"text {n}"}}).encode() + b"\n"
                    for n in range(count))


def conforms(spec: Spec, schema: dict[str, Any], body: Any, what: str) -> None:
    problems = spec.errors(schema, body)
    assert not problems, f"{what} breaks Azure's API description:\n" + "\n".join(problems[:10])


def ok_json(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def test_every_files_answer_validates_against_azures_schemas(spec: Spec, stack: Stack) -> None:
    file_schema = spec.response_schema("/files", "post")
    assert file_schema == {"$ref": "#/components/schemas/AzureOpenAIFile"}  # the document says what it says
    assert spec.response_schema("/files/{file_id}", "get") == file_schema
    list_schema = spec.response_schema("/files", "get")
    delete_schema = spec.response_schema("/files/{file_id}", "delete")
    content = requests_file(3)
    with raw(stack) as client:
        with_expiry = ok_json(client.post("/files", files={"file": ("in.jsonl", content)}, data={
            "purpose": "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "7200"}))
        default = ok_json(client.post("/files", files={"file": ("in.jsonl", content)}, data={"purpose": "batch"}))
        for created in (with_expiry, default):
            conforms(spec, file_schema, created, "POST /files")
            conforms(spec, file_schema, ok_json(client.get(f"/files/{created['id']}")), "GET /files/{id}")
        for params in ({}, {"purpose": "batch"}, {"order": "asc"}, {"limit": 1}, {"after": default["id"]}):
            listed = ok_json(client.get("/files", params=params))
            assert listed["data"], params
            conforms(spec, list_schema, listed, f"GET /files {params}")
        downloaded = client.get(f"/files/{default['id']}/content")
        assert downloaded.status_code == 200 and downloaded.content == content
        assert downloaded.headers["content-type"] == "application/octet-stream"  # the document's only media type
        deleted = client.delete(f"/files/{with_expiry['id']}")
        conforms(spec, delete_schema, ok_json(deleted), "DELETE /files/{id}")


def test_a_batch_output_file_validates_too(spec: Spec, stack: Stack) -> None:
    """The files a batch writes (``purpose=batch_output``) are listed and read like uploads; the batch
    that wrote them is, as answered over HTTP, exactly OpenAI's Batch."""
    client = sdk(stack, "key-files-spec-output")
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(requests_file(2))), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    deadline = time.monotonic() + 90
    while batch.status not in ("completed", "failed", "cancelled", "expired"):
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.2)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed" and batch.output_file_id
    file_schema = spec.response_schema("/files/{file_id}", "get")
    with raw(stack, "key-files-spec-output") as http:
        output = ok_json(http.get(f"/files/{batch.output_file_id}"))
        assert output["purpose"] == "batch_output"
        conforms(spec, file_schema, output, "GET /files/{output id}")
        listed = ok_json(http.get("/files", params={"purpose": "batch_output"}))
        assert [item["id"] for item in listed["data"]] == [batch.output_file_id]
        conforms(spec, spec.response_schema("/files", "get"), listed, "GET /files?purpose=batch_output")
        assert assert_openai_batch(ok_json(http.get(f"/batches/{batch.id}"))).status == "completed"
        for listed_batch in ok_json(http.get("/batches"))["data"]:
            assert_openai_batch(listed_batch)


def test_an_empty_list_differs_only_in_null_cursors(spec: Spec, stack: Stack) -> None:
    """OpenAI answers an empty page with null ``first_id``/``last_id``; Azure's document has no null to give."""
    with raw(stack, BOB) as client:
        empty = ok_json(client.get("/files", params={"purpose": "batch_output"}))
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    relaxed = copy.deepcopy(spec.schemas["AzureListFilesResponse"])
    for cursor in ("first_id", "last_id"):
        relaxed["properties"][cursor] = {"type": ["string", "null"]}
    conforms(spec, relaxed, empty, "an empty GET /files (cursors relaxed)")
    assert spec.errors(spec.schemas["AzureListFilesResponse"], empty)  # the one difference, and nothing else


def _multipart(parts: list[tuple[str, str | None, str | None, bytes]], boundary: str = "spec") -> tuple[bytes,
                                                                                                        dict[str, str]]:
    """A form as any client may write it: (name, filename, content type, value) per part."""
    body = b""
    for name, filename, content_type, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        headers = f"Content-Disposition: {disposition}\r\n" + (f"Content-Type: {content_type}\r\n" if content_type
                                                               else "")
        body += f"--{boundary}\r\n{headers}\r\n".encode() + value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


def _expiry_parts(spelling: str, anchor: object, seconds: object) -> list[tuple[str, str | None, str | None, bytes]]:
    """``expires_after`` in one of the spellings clients send.

    ``json``: one part holding the object, as OpenAPI 3.0 encodes an object property of a multipart body
    (``application/json``; what a client generated from Azure's document sends). ``dots``: the fields of
    Azure's documented curl upload (``-F expires_after.seconds=...``). ``brackets``: the OpenAI SDKs'.
    """
    if spelling == "json":
        member = json.dumps({"seconds": seconds, "anchor": anchor}).encode()
        return [("expires_after", None, "application/json", member)]
    left, right = ("[", "]") if spelling == "brackets" else (".", "")
    return [(f"expires_after{left}anchor{right}", None, None, str(anchor).encode()),
            (f"expires_after{left}seconds{right}", None, None, str(seconds).encode())]


SPELLINGS = ("json", "dots", "brackets")


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_the_form_azures_document_describes_is_accepted(spec: Spec, stack: Stack, spelling: str) -> None:
    described = spec.schemas[UPLOAD]
    assert set(described["properties"]) == {"file", "purpose", "expires_after"}
    assert set(described["required"]) == {"file", "purpose", "expires_after"}
    expiry = described["properties"]["expires_after"]
    assert set(expiry["properties"]) == set(expiry["required"]) == {"seconds", "anchor"}
    assert expiry["properties"]["anchor"] == {"$ref": "#/components/schemas/AzureFileExpiryAnchor"}
    (anchor,) = spec.schemas["AzureFileExpiryAnchor"]["enum"]
    assert "batch" in described["properties"]["purpose"]["enum"]
    content = requests_file(1, prefix=spelling)
    with raw(stack) as client:
        for seconds in (AZURE_MIN_SECONDS, AZURE_MAX_SECONDS, OPENAI_MIN_SECONDS):
            body, headers = _multipart([("purpose", None, None, b"batch"), *_expiry_parts(spelling, anchor, seconds),
                                        ("file", "in.jsonl", "application/jsonl", content)])
            created = ok_json(client.post("/files", content=body, headers=headers))
            conforms(spec, spec.response_schema("/files", "post"), created, f"POST /files ({spelling})")
            assert created["expires_at"] == created["created_at"] + seconds, (spelling, seconds)
            assert client.get(f"/files/{created['id']}/content").content == content


@pytest.mark.parametrize(("spelling", "anchor", "seconds", "param"), [
    ("json", "created_at", OPENAI_MIN_SECONDS - 1, "expires_after.seconds"),
    ("json", "created_at", AZURE_MAX_SECONDS + 1, "expires_after.seconds"),
    ("json", "created_at", "3600", "expires_after.seconds"),  # the document's seconds is an integer
    ("json", "last_active_at", 3600, "expires_after.anchor"),
    ("dots", "created_at", AZURE_MAX_SECONDS + 1, "expires_after.seconds"),
    ("dots", "expires_at", 3600, "expires_after.anchor"),
])
def test_an_expiry_outside_the_described_values_is_refused(stack: Stack, spelling: str, anchor: object,
                                                           seconds: object, param: str) -> None:
    body, headers = _multipart([("purpose", None, None, b"batch"), *_expiry_parts(spelling, anchor, seconds),
                                ("file", "in.jsonl", None, requests_file(1))])
    with raw(stack) as client:
        answer = client.post("/files", content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert (answer.json()["error"]["code"], answer.json()["error"]["param"]) == ("invalid_value", param)


@pytest.mark.parametrize("value", [b"not json", b"[3600]", b'{"seconds": 3600}',
                                   b'{"seconds": 3600, "anchor": "created_at", "unit": "s"}',
                                   b'{"seconds": 3600, "seconds": 7200, "anchor": "created_at"}'])
def test_an_expires_after_part_that_is_not_the_described_object_is_refused(stack: Stack, value: bytes) -> None:
    body, headers = _multipart([("purpose", None, None, b"batch"), ("expires_after", None, "application/json", value),
                                ("file", "in.jsonl", None, requests_file(1))])
    with raw(stack) as client:
        before = client.get("/files").json()["data"]
        answer = client.post("/files", content=body, headers=headers)
        assert answer.status_code in (400, 422), answer.text
        assert answer.json()["error"]["param"].startswith("expires_after")
        assert client.get("/files").json()["data"] == before  # nothing was stored


@pytest.mark.parametrize(("first", "second"), [(a, b) for a in SPELLINGS for b in SPELLINGS if a < b])
def test_two_spellings_of_expires_after_in_one_form_are_ambiguous(stack: Stack, first: str, second: str) -> None:
    """Which copy counts would depend on the reader, as with a field sent twice: refused, never guessed."""
    body, headers = _multipart([("purpose", None, None, b"batch"), *_expiry_parts(first, "created_at", 3600),
                                *_expiry_parts(second, "created_at", 7200), ("file", "in.jsonl", None,
                                                                              requests_file(1))])
    with raw(stack) as client:
        answer = client.post("/files", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert (answer.json()["error"]["code"], answer.json()["error"]["param"]) == ("invalid_multipart", "expires_after")


def test_what_the_document_requires_is_required_and_other_purposes_are_named(spec: Spec, stack: Stack) -> None:
    """``file`` and ``purpose`` are required; ``expires_after`` is not (see the module docstring)."""
    content = requests_file(1)
    with raw(stack) as client:
        no_file, headers = _multipart([("purpose", None, None, b"batch")])
        missing = client.post("/files", content=no_file, headers=headers)
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "file"
        no_purpose, headers = _multipart([("file", "in.jsonl", None, content)])
        missing = client.post("/files", content=no_purpose, headers=headers)
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "purpose"
        for purpose in spec.schemas[UPLOAD]["properties"]["purpose"]["enum"]:
            form, headers = _multipart([("purpose", None, None, purpose.encode()), ("file", "in.jsonl", None, content)])
            answer = client.post("/files", content=form, headers=headers)
            if purpose == "batch":
                assert answer.status_code == 200, answer.text
            else:
                assert answer.status_code == 400, (purpose, answer.text)
                assert answer.json()["error"]["code"] == "invalid_file_purpose"


def test_a_file_row_without_times_leaves_expires_at_out_rather_than_null(spec: Spec) -> None:
    """A row with no time to judge by is kept (``shared.jobs.retention``); its view then has no expiry to show,
    and Azure's ``expires_at`` is an integer when present, never null (OpenAI's SDK reads absent as None)."""
    from openai.types import FileObject

    from shared.batch.files import file_view

    view = file_view(FILE_ID, {"purpose": "batch_output", "bytes": 0, "filename": "out.jsonl"})
    conforms(spec, spec.schemas["AzureOpenAIFile"], view, "a file without times")
    assert "expires_at" not in view and FileObject.model_validate(view).expires_at is None
