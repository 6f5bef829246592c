"""The retention rule (shared/jobs/retention.py): what is expired, decided from a row alone."""

from __future__ import annotations

import pytest
from azure.data.tables import EdmType, EntityProperty

from shared.config import ConfigurationError, Settings
from shared.jobs import retention
from shared.jobs.ids import derived_file_id, new_batch_id, new_file_id
from shared.jobs.sweeper import file_blobs

DAY = 86400.0
KEEP = 30 * DAY
T = 1_800_000_000.0


def job(status: str, **fields: object) -> dict[str, object]:
    return {"PartitionKey": "ejob_" + "0" * 32, "RowKey": "job", "status": status, "created_at": T - DAY, **fields}


def file(**fields: object) -> dict[str, object]:
    return {"PartitionKey": new_file_id(), "RowKey": "file", "purpose": "batch", **fields}


@pytest.mark.parametrize("status", ["queued", "running", "cancelling"])
def test_a_job_that_has_not_ended_is_kept_whatever_its_age(status: str) -> None:
    row = job(status, created_at=0.0, completed_at=0.0, retain_until=0.0)
    assert retention.expires_at(row, KEEP) is None
    assert not retention.is_expired(row, T * 10, retention=KEEP)


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled", "expired"])
def test_an_ended_job_is_kept_until_its_stamp(status: str) -> None:
    row = job(status, completed_at=T, **retention.end_fields(T, KEEP))
    assert row["retain_until"] == T + KEEP
    assert not retention.is_expired(row, T + KEEP - 1, retention=KEEP)
    assert retention.is_expired(row, T + KEEP, retention=KEEP)


def test_the_stamp_wins_over_a_later_change_of_the_setting() -> None:
    row = job("succeeded", completed_at=T, retain_until=T + 7 * DAY)
    assert retention.is_expired(row, T + 8 * DAY, retention=KEEP)
    assert not retention.is_expired(row, T + 6 * DAY, retention=1.0)


def test_an_ended_job_without_a_stamp_is_kept_from_its_end() -> None:
    # Ended by code that does not stamp (store.fail) or before retention existed; a batch may only
    # have its specific end time.
    assert retention.expires_at(job("failed", completed_at=T), KEEP) == T + KEEP
    assert retention.expires_at(job("cancelled", cancelled_at=T + 5), KEEP) == T + 5 + KEEP
    assert retention.expires_at(job("expired", expired_at=EntityProperty(int(T), EdmType.INT64)), KEEP) == T + KEEP
    # No time to judge by: kept (nothing is deleted on a guess).
    assert retention.expires_at(job("succeeded"), KEEP) is None


def test_a_batch_window_expires_at_is_not_its_retention() -> None:
    # On a batch row expires_at is the completion window (OpenAI's Batch.expires_at), long past here.
    row = job("succeeded", expires_at=T - 10 * DAY, completed_at=T)
    assert not retention.is_expired(row, T + 1, retention=KEEP)


def test_a_file_is_kept_until_its_own_expiry_else_created_plus_retention() -> None:
    own = file(created_at=T, expires_at=T + 3600)
    assert not retention.is_expired(own, T + 3599, retention=KEEP)
    assert retention.is_expired(own, T + 3600, retention=KEEP)
    longer = file(created_at=T, expires_at=T + 40 * DAY)
    assert not retention.is_expired(longer, T + 35 * DAY, retention=KEEP)
    plain = file(created_at=T)
    assert not retention.is_expired(plain, T + KEEP - 1, retention=KEEP)
    assert retention.is_expired(plain, T + KEEP, retention=KEEP)
    assert retention.expires_at(file(), KEEP) is None


def test_garbage_timestamps_never_expire_a_row() -> None:
    for value in ("0", None, True, [1]):
        assert not retention.is_expired(job("succeeded", completed_at=value), T, retention=KEEP)
        assert not retention.is_expired(file(created_at=value), T, retention=KEEP)


def test_retention_comes_from_data_retention_days() -> None:
    base = {"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}
    assert Settings.from_env(base).data_retention_seconds == 30 * DAY
    assert Settings.from_env({**base, "DATA_RETENTION_DAYS": "0.5"}).data_retention_seconds == DAY / 2
    for bad in ("0", "-1", "forever"):
        with pytest.raises(ConfigurationError, match="DATA_RETENTION_DAYS"):
            Settings.from_env({**base, "DATA_RETENTION_DAYS": bad})


def test_a_file_row_names_only_blobs_of_its_own() -> None:
    batch = new_batch_id()
    output = derived_file_id(batch, "output")
    errors = derived_file_id(batch, "error")
    upload = new_file_id()
    assert file_blobs(upload, f"files/{upload}.jsonl") == [f"files/{upload}.jsonl"]
    assert file_blobs(output, f"jobs/{batch}/output.jsonl") == [f"files/{output}.jsonl", f"jobs/{batch}/output.jsonl"]
    assert file_blobs(errors, f"jobs/{batch}/errors.jsonl")[1] == f"jobs/{batch}/errors.jsonl"
    # Anything else a row names is not this file's: another batch's output, a job's results, a
    # traversal, another container.
    for foreign in (f"jobs/{batch}/errors.jsonl", f"jobs/{new_batch_id()}/output.jsonl",
                    f"jobs/{batch}/results/000000.jsonl", f"jobs/{batch}/../output.jsonl", f"files/{upload}.jsonl",
                    "../other-container/x", None, 7):
        assert file_blobs(output, foreign) == [f"files/{output}.jsonl"], foreign
