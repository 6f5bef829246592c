"""The Batch object and the create parameters, held to OpenAI's contract (the SDK's own types).

Azure's v1 OpenAPI description has no ``/batches`` path, so the references are OpenAI's types
(``openai.types.Batch``, ``BatchCreateParams``), which Azure's batch docs mirror field for field,
and Microsoft's documented limits where they differ from OpenAI's. A view is checked in every
state the engine leaves a row in: exactly OpenAI's fields, each of OpenAI's type, strictly
(no coercion), as JSON. :func:`assert_openai_batch` is also used on live answers
(``tests/batch/test_files_spec.py``).
"""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest
from openai.types import Batch
from openai.types.batch_create_params import BatchCreateParams, OutputExpiresAfter
from pydantic import ValidationError

from shared.batch.openapi_schema import CREATE_REQUEST
from shared.batch.service import COMPLETION_WINDOW, ENDPOINTS, CreateBatchRequest
from shared.batch.service import OutputExpiresAfter as OurOutputExpiresAfter
from shared.batch.view import batch_view
from shared.jobs.store import ChunkState, JobState

BATCH_ID = "batch_" + "0" * 32
FILE_ID = "file-" + "1" * 32
# OpenAI's documented ranges (the SDK's docstrings) and Azure's (global batch how-to: 14 to 30 days).
OPENAI_MIN_SECONDS, MAX_SECONDS, AZURE_MIN_SECONDS = 3600, 2_592_000, 1_209_600


def assert_openai_batch(body: dict[str, Any]) -> Batch:
    """``body`` is OpenAI's Batch: every field and no other, each of its type without coercion."""
    assert set(body) == set(Batch.model_fields), set(body) ^ set(Batch.model_fields)
    return Batch.model_validate_json(json.dumps(body), strict=True)


def _state(done: int = 0, **row: Any) -> JobState:
    base = {"PartitionKey": BATCH_ID, "kind": "batch", "endpoint": "/v1/chat/completions", "model": "chat",
            "input_file_id": FILE_ID, "completion_window": "24h", "created_at": 1_700_000_000.125,
            "expires_at": 1_700_086_400.125, "total": 4}
    return JobState(base | row, [ChunkState(n, 1, 1, 0, 5) for n in range(done)])


ROWS: list[tuple[dict[str, Any], int, str]] = [
    ({"status": "queued"}, 0, "validating"),
    ({"status": "running"}, 0, "validating"),
    ({"status": "running", "enqueued": True, "chunks": 2, "in_progress_at": 1_700_000_001.5}, 1, "in_progress"),
    ({"status": "running", "enqueued": True, "chunks": 2, "in_progress_at": 1.0, "finalizing_at": 2.0}, 2,
     "finalizing"),
    ({"status": "cancelling", "cancelling_at": 3.0, "metadata": json.dumps({"team": "search"})}, 1, "cancelling"),
    ({"status": "succeeded", "completed_at": 9.9, "embedded": 4, "tokens": 30, "output_tokens": 20,
      "output_file_id": FILE_ID}, 0, "completed"),
    ({"status": "failed", "failed_at": 4.0, "error_code": "enqueue_failed", "error": "queue down"}, 0, "failed"),
    ({"status": "failed", "completed_at": 4.0, "errors": json.dumps([{"code": "invalid_url", "message": "bad",
                                                                      "param": "url", "line": 3}])}, 0, "failed"),
    ({"status": "cancelled", "cancelling_at": 3.0, "cancelled_at": 5.0, "completed_at": 5.0, "embedded": 1,
      "failed": 3, "output_file_id": FILE_ID, "error_file_id": FILE_ID}, 0, "cancelled"),
    ({"status": "expired", "expired_at": 6.0, "completed_at": 6.0, "error_file_id": FILE_ID}, 0, "expired"),
]


@pytest.mark.parametrize(("row", "done", "status"), ROWS)
def test_every_state_is_exactly_an_openai_batch(row: dict[str, Any], done: int, status: str) -> None:
    batch = assert_openai_batch(batch_view(BATCH_ID, _state(done, **row)))
    assert batch.status == status
    assert batch.completion_window == COMPLETION_WINDOW and batch.created_at == 1_700_000_000
    assert batch.request_counts is not None and batch.request_counts.total == 4
    assert batch.usage is not None  # OpenAI's usage block, in every state
    ended = {"completed": batch.completed_at, "failed": batch.failed_at, "cancelled": batch.cancelled_at,
             "expired": batch.expired_at}
    assert [name for name, moment in ended.items() if moment is not None] == \
        ([status] if status in ended else [])  # only its own ending's time


def test_the_statuses_are_openais_and_azures() -> None:
    """The statuses a view can show are exactly the SDK's Literal (Azure's docs list the same eight)."""
    statuses = typing.get_args(Batch.model_fields["status"].annotation)
    assert {view_status for _, _, view_status in ROWS} == set(statuses) and len(statuses) == 8


def _hints(params: type) -> dict[str, Any]:
    return typing.get_type_hints(params, include_extras=True)


def _required(params: type) -> set[str]:
    return {name for name, hint in _hints(params).items() if typing.get_origin(hint) is typing.Required}


def test_create_takes_exactly_openais_parameters() -> None:
    ours = CreateBatchRequest.model_fields
    assert set(ours) == set(_hints(BatchCreateParams)) == set(CREATE_REQUEST["properties"])
    assert {name for name, field in ours.items() if field.is_required()} == _required(BatchCreateParams) == \
        set(CREATE_REQUEST["required"])
    assert set(OurOutputExpiresAfter.model_fields) == set(_hints(OutputExpiresAfter)) == \
        _required(OutputExpiresAfter)
    (window,) = typing.get_args(typing.get_args(_hints(BatchCreateParams)["completion_window"])[0])
    assert window == COMPLETION_WINDOW
    openai_endpoints = typing.get_args(typing.get_args(_hints(BatchCreateParams)["endpoint"])[0])
    assert set(ENDPOINTS) <= set(openai_endpoints)  # the rest are refused by name (400 invalid_batch_endpoint)


def _create(**extra: Any) -> dict[str, Any]:
    return {"input_file_id": FILE_ID, "endpoint": "/v1/embeddings", "completion_window": "24h", **extra}


@pytest.mark.parametrize(("seconds", "ok"), [
    (OPENAI_MIN_SECONDS, True), (AZURE_MIN_SECONDS, True), (MAX_SECONDS, True),
    (OPENAI_MIN_SECONDS - 1, False), (MAX_SECONDS + 1, False), ("3600", False), (True, False),
])
def test_output_expires_after_takes_openais_range_which_holds_azures(seconds: Any, ok: bool) -> None:
    body = _create(output_expires_after={"anchor": "created_at", "seconds": seconds})
    if ok:
        parsed = CreateBatchRequest.model_validate_json(json.dumps(body))
        assert parsed.output_expires_after is not None and parsed.output_expires_after.seconds == seconds
    else:
        with pytest.raises(ValidationError):
            CreateBatchRequest.model_validate_json(json.dumps(body))


@pytest.mark.parametrize(("metadata", "ok"), [
    ({f"k{n}": "v" for n in range(16)}, True), ({f"k{n}": "v" for n in range(17)}, False),
    ({"k" * 64: "v" * 512}, True), ({"k" * 65: "v"}, False), ({"k": "v" * 513}, False), ({"k": 1}, False),
    (None, True),
])
def test_metadata_has_openais_limits(metadata: Any, ok: bool) -> None:
    """16 pairs, keys up to 64 characters, string values up to 512 (OpenAI's Metadata; Azure's docs agree)."""
    body = json.dumps(_create(metadata=metadata))
    if ok:
        assert CreateBatchRequest.model_validate_json(body).metadata == metadata
    else:
        with pytest.raises(ValidationError):
            CreateBatchRequest.model_validate_json(body)
