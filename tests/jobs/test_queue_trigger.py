"""Reading broken messages well enough to fail the right job with a readable reason."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.jobs import messages, proof
from shared.jobs.queue_trigger import claim, describe, sniff_job_id

JOB_ID = "ejob_" + "ab" * 16


def test_sniffs_the_id_from_json_or_from_text() -> None:
    assert sniff_job_id(json.dumps({"id": JOB_ID, "junk": True}).encode()) == JOB_ID
    assert sniff_job_id(b'{"id": "' + JOB_ID.encode() + b'", broken') == JOB_ID
    assert sniff_job_id(b'{"id": "ejob_not-hex"}') is None
    assert sniff_job_id(b"\xff\xfe binary") is None


def test_validation_reasons_are_short_and_point_at_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        messages.parse(json.dumps({"schema": "embedding-job/v1", "type": "job", "id": JOB_ID, "model": "m",
                                   "input": ["ok", 42, None]}))
    reason = describe(info.value)
    assert reason.startswith("invalid message (input.1")
    assert len(reason) < 600


def test_a_message_proves_its_job_only_with_that_jobs_token() -> None:
    row = {"token": "t" * 32}
    assert proof.proves(row, "t" * 32)
    assert not proof.proves(row, "u" * 32) and not proof.proves(row, None) and not proof.proves(row, 42)
    assert proof.proves({}, None)  # a row from before tokens: as before
    assert proof.proves(None, None)  # no row yet: nobody else holds this id


def test_claims_come_from_the_top_level_id_and_token_only() -> None:
    chunk = {"schema": messages.SCHEMA_VERSION, "type": "chunk", "id": JOB_ID, "chunk": 0, "start": 0, "count": 1,
             "model": "m", "token": "t" * 32}
    assert claim(json.dumps(chunk).encode()) == (JOB_ID, "t" * 32, None)
    assert claim(b"garbage mentioning " + JOB_ID.encode()) == (None, None, None)
    assert claim(json.dumps({"note": JOB_ID}).encode()) == (None, None, None)
    assert claim(json.dumps({"id": JOB_ID, "junk": 1}).encode()) == (JOB_ID, None, None)


def test_a_tokenless_job_message_is_proven_by_its_own_digest() -> None:
    job = {"schema": messages.SCHEMA_VERSION, "type": "job", "id": JOB_ID, "model": "m", "input": ["a"]}
    _, token, _ = claim(json.dumps(job).encode())
    assert isinstance(token, str) and token == claim(json.dumps(job, indent=2).encode())[1]
    assert token != claim(json.dumps({**job, "input": ["b"]}).encode())[1]
