"""The v1 queue message: the pydantic models and the JSON Schema file accept and refuse the same messages."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import TextBase64EncodePolicy
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from shared.jobs import messages

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "embedding-job-message.v1.json"
JOB_ID = "ejob_" + "0123456789abcdef" * 2
BASE = {"schema": "embedding-job/v1", "type": "job", "id": JOB_ID, "model": "text-embedding-3-small"}
CHUNK = {"schema": "embedding-job/v1", "type": "chunk", "id": JOB_ID, "chunk": 0, "start": 0, "count": 10,
         "model": "text-embedding-3-small"}
BATCH_ID = "batch_" + "0123456789abcdef" * 2
BATCH = {"schema": "embedding-job/v1", "type": "batch", "id": BATCH_ID, "token": "b" * 32}

VALID: list[dict[str, Any]] = [
    {**BASE, "input": ["a", "b"]},
    {**BASE, "input": [{"id": "doc-1", "text": "x"}, "plain"]},
    {**BASE, "input": [""]},
    {**BASE, "input_blob": {"name": "uploads/in.jsonl"}},
    {**BASE, "input_blob": {"container": "my-data", "name": "in.jsonl"}, "dimensions": 256,
     "metadata": {"team": "search"}},
    CHUNK,
    {**CHUNK, "dimensions": 64, "deferrals": 3},
    {**BASE, "input": ["a"], "dimensions": 256.0},  # an integer, for JSON Schema
    {**BASE, "input": ["a"], "token": "t" * 32, "owner": "key:0123456789abcdef"},
    {**BASE, "input": ["a"], "owner": "principal:6f1c2d3e-aaaa-bbbb-cccc-0123456789ab"},
    {**BASE, "input": ["a"], "owner": "anonymous"},
    {**CHUNK, "token": "Abc_-" * 8},
    {**CHUNK, "attempts": 2, "deadline": 1795897576.25},
    {**CHUNK, "deadline": 1795897576},
    {**CHUNK, "id": BATCH_ID, "token": "b" * 32, "deadline": 1795897576.5},  # a batch's chunk
    {**BATCH, "action": "plan"},
    {**BATCH, "action": "close"},
]

INVALID: list[dict[str, Any]] = [
    {**CHUNK, "attempts": -1},
    {**CHUNK, "deadline": "tomorrow"},
    {**BASE},                                                   # no input at all
    {**BASE, "input": ["a"], "input_blob": {"name": "x"}},      # both sources
    {**BASE, "input": []},
    {**BASE, "input": [1]},
    {**BASE, "input": [{"id": "a"}]},
    {**BASE, "input": [{"id": "", "text": "x"}]},
    {**BASE, "input": [{"id": "a", "text": "x", "more": 1}]},
    {**BASE, "input": ["a"], "dimensions": 0},
    {**BASE, "input": ["a"], "dimensions": "256"},
    {**BASE, "input": ["a"], "dimensions": True},
    {**BASE, "input": ["a"], "dimensions": 2.5},
    {**BASE, "input": ["a"], "dimensions": None},
    {**BASE, "input": ["a"], "metadata": {"k": 1}},
    {**BASE, "input": ["a"], "metadata": {f"k{i}": "v" for i in range(17)}},
    {**BASE, "input": ["a"], "unknown": 1},
    {**BASE, "id": "job-1", "input": ["a"]},
    {**BASE, "schema": "embedding-job/v2", "input": ["a"]},
    {**BASE, "type": "other", "input": ["a"]},
    {**BASE, "model": "", "input": ["a"]},
    {**BASE, "input_blob": {"name": ""}},
    {**BASE, "input_blob": {"container": "Bad_Name", "name": "x"}},
    {**BASE, "input_blob": "x.jsonl"},
    {**BASE, "input": ["a"], "token": "short"},
    {**BASE, "input": ["a"], "token": "has space" * 4},
    {**BASE, "input": ["a"], "owner": "key:NOTHEX0123456789"},
    {**BASE, "input": ["a"], "owner": "queue"},
    {**BASE, "input": ["a"], "owner": "principal:a b"},
    {**CHUNK, "owner": "anonymous"},
    {**CHUNK, "count": 0},
    {**CHUNK, "count": 2049},
    {**CHUNK, "chunk": -1},
    {k: v for k, v in CHUNK.items() if k != "start"},
    {**BASE, "id": BATCH_ID, "input": ["a"]},                   # a job message names an embedding job only
    {**BATCH, "id": JOB_ID},                                    # a batch message names a batch only
    {k: v for k, v in BATCH.items() if k != "token"},            # a batch message always proves itself
    {**BATCH, "action": "run"},
    {**BATCH, "model": "text-embedding-3-small"},
    {**BATCH, "action": None},
]


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize("message", VALID)
def test_valid_messages_pass_both(message: dict[str, Any], validator: Draft202012Validator) -> None:
    validator.validate(message)
    parsed = messages.parse(json.dumps(message))
    expected = {"deferrals": 0, **message} if parsed.type == "chunk" else dict(message)
    if "dimensions" in expected:
        expected["dimensions"] = int(expected["dimensions"])
    assert json.loads(messages.to_json(parsed)) == expected


@pytest.mark.parametrize("message", INVALID)
def test_invalid_messages_fail_both(message: dict[str, Any], validator: Draft202012Validator) -> None:
    assert list(validator.iter_errors(message)), "the JSON Schema accepted it"
    with pytest.raises(ValidationError):
        messages.parse(json.dumps(message))


def test_not_json_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        messages.parse(b"not json at all")


def test_encoding_matches_the_storage_sdk_policy() -> None:
    text = json.dumps({**BASE, "input": ["héllo ✨"]}, ensure_ascii=False)
    policy = TextBase64EncodePolicy()
    policy.configure(require_encryption=False, key_encryption_key=None, resolver=None)
    assert messages.encode(text) == policy(text)
    assert base64.b64decode(messages.encode(text)).decode() == text


def test_queue_size_limit_counts_the_encoded_form() -> None:
    assert messages.encoded_size("a" * 3) == 4
    assert messages.fits_queue("a" * 49_152)
    assert not messages.fits_queue("a" * 49_153)


SUBMIT_VALID: list[dict[str, Any]] = [
    {"model": "m", "input": ["a"]},
    {"model": "m", "input": ["", {"id": "x", "text": ""}], "dimensions": 8192, "metadata": {"k": "v" * 512}},
    {"model": "m", "input": ["a"], "dimensions": 6701.0},
]
SUBMIT_INVALID: list[dict[str, Any]] = [
    {"model": "m"},
    {"input": ["a"]},
    {"model": "", "input": ["a"]},
    {"model": "m", "input": []},
    {"model": "m", "input": ["a"], "extra": 1},
    {"model": "m", "input": [{"id": "x", "text": "t", "more": 1}]},
    {"model": "m", "input": [{"id": "", "text": "t"}]},
    {"model": "m", "input": ["a"], "dimensions": 8193},
    {"model": "m", "input": ["a"], "dimensions": None},
    {"model": "m", "input": ["a"], "metadata": {"": "v"}},
    {"model": "m", "input": ["a"], "metadata": {"k": 1}},
]


@pytest.mark.parametrize(("body", "ok"), [(b, True) for b in SUBMIT_VALID] + [(b, False) for b in SUBMIT_INVALID])
def test_the_openapi_submit_schema_matches_the_route(body: dict[str, Any], ok: bool) -> None:
    from shared.jobs.openapi_schema import SUBMIT_REQUEST
    from shared.jobs.service import SubmitRequest

    accepted_by_schema = not list(Draft202012Validator(SUBMIT_REQUEST).iter_errors(body))
    try:
        SubmitRequest.model_validate_json(json.dumps(body))
        accepted_by_route = True
    except ValidationError:
        accepted_by_route = False
    assert accepted_by_schema == accepted_by_route == ok
