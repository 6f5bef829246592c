"""Reading broken messages well enough to fail the right job with a readable reason."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.jobs import messages
from shared.jobs.dispatch import describe, sniff_job_id

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
