"""Input blob references: only job data is readable, and every refusal is the same refusal."""

from __future__ import annotations

import pytest

from shared.jobs import layout, refs
from shared.jobs.messages import BlobRef

JOB_ID = "ejob_" + "0123456789abcdef" * 2
OTHER_JOB = "ejob_" + "fedcba9876543210" * 2
JOBS = "embedding-jobs"


@pytest.mark.parametrize("ref", [
    BlobRef(name="inputs/corpus.jsonl"),
    BlobRef(container=JOBS, name="inputs/2025/date=06-01/part-0001.jsonl"),
    BlobRef(name=layout.input_blob(JOB_ID)),
])
def test_job_data_is_allowed(ref: BlobRef) -> None:
    assert refs.allowed_input(ref, JOB_ID, JOBS) == (JOBS, ref.name)


@pytest.mark.parametrize("ref", [
    BlobRef(container="privatedata", name="inputs/hr.jsonl"),
    BlobRef(container="azure-webjobs-hosts", name="inputs/x"),
    BlobRef(name="hr.jsonl"),
    BlobRef(name="inputs/"),
    BlobRef(name="inputs"),
    BlobRef(name="../privatedata/hr.jsonl"),
    BlobRef(name="inputs/../jobs/x/results/000000.jsonl"),
    BlobRef(name="inputs/./x.jsonl"),
    BlobRef(name="inputs//x.jsonl"),
    BlobRef(name="/inputs/x.jsonl"),
    BlobRef(name="inputs/%2e%2e/%2e%2e/privatedata/hr.jsonl"),
    BlobRef(name="inputs/..%2fx"),
    BlobRef(name="inputs\\..\\hr.jsonl"),
    BlobRef(name="inputs/x.jsonl?comp=list"),
    BlobRef(name="inputs/x.jsonl#frag"),
    BlobRef(name="https://other.blob.core.windows.net/c/inputs/x.jsonl"),
    BlobRef(name="inputs/\u2024\u2024/x"),       # one-dot leaders, not ASCII dots
    BlobRef(name="inputs/x\u0000.jsonl"),
    BlobRef(name="inputs/ x.jsonl"),
    BlobRef(name=layout.input_blob(OTHER_JOB)),    # another job's claim check
    BlobRef(name=layout.chunk_results_blob(JOB_ID, 0)),  # the job's own results
    BlobRef(name=layout.closed_results_blob(JOB_ID, 0)),
    BlobRef(name=layout.chunk_blob(OTHER_JOB, 0)),
    BlobRef(name="poison/x.json"),
])
def test_anything_else_is_refused_with_the_one_message(ref: BlobRef) -> None:
    with pytest.raises(refs.InputUnavailable) as refused:
        refs.allowed_input(ref, JOB_ID, JOBS)
    assert str(refused.value) == refs.UNAVAILABLE
