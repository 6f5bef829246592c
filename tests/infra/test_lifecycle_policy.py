"""The storage lifecycle policy: a backstop behind the app's retention sweep, never ahead of it.

The app deletes expired job, batch and file data itself (``data_retention_sweep``,
shared/jobs/sweeper.py); the policy deletes what is left under the same prefixes some days later,
so it must match only that data and must never fire before the app would have.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.config import DEFAULT_DATA_RETENTION_DAYS
from shared.jobs import layout

STORAGE = "core/storage.bicep"
POLICY = "Microsoft.Storage/storageAccounts/managementPolicies"
# "A prefix string must start with a container name"; blobTypes is required in a rule's filters.
STRUCTURE = "https://learn.microsoft.com/azure/storage/blobs/lifecycle-management-policy-structure"
# "baseBlob ... the current version of a blob"; deleting with soft delete on leaves it soft-deleted.
DELETE = "https://learn.microsoft.com/azure/storage/blobs/lifecycle-management-policy-delete"
# OpenAI's files expires_after: seconds between 3600 and 2592000 (30 days), anchored at created_at.
LONGEST_FILE_EXPIRY_DAYS = 2592000 / 86400
# A batch's blobs may be written up to its completion window (24 h) before it ends.
BATCH_WINDOW_DAYS = 1


def _rule(templates: Any) -> dict[str, Any]:
    policy = templates.resource(POLICY, STORAGE)
    assert policy.config["parent"] == "storage" and policy.config["name"] == "default"  # the only name allowed
    rules = templates.get(policy.config, "properties.policy.rules")
    assert len(rules) == 1
    rule: dict[str, Any] = rules[0]
    assert rule["enabled"] is True and rule["type"] == "Lifecycle"
    return rule


def _evaluate(templates: Any, value: Any, params: dict[str, int]) -> int:
    """A day count from the template: a number, a parameter or variable, ``+`` and ``max()``."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value in params:
            return params[value]
        return _evaluate(templates, templates.var(STORAGE, value), params)
    call = templates.function_call(value)
    if call is not None:
        kind, args = call
        assert kind == "max", kind
        return max(_evaluate(templates, a, params) for a in args.values())
    operator = value["operator"]
    assert operator["type"] == "add", operator
    return sum(_evaluate(templates, o, params) for o in operator["operands"].values())


def test_policy_matches_only_job_batch_file_and_poison_blobs_of_the_jobs_container(templates):
    rule = _rule(templates)
    filters = rule["definition"]["filters"]
    assert filters["blobTypes"] == ["blockBlob"], STRUCTURE  # required; every blob the app writes is a block blob
    prefixes = filters["prefixMatch"]
    assert all(p.startswith("${jobsContainerName}/") for p in prefixes), STRUCTURE
    # Exactly the top-level folders of what the app writes and sweeps (shared/jobs/layout.py) ...
    written = {name.split("/")[0] + "/" for name in (
        layout.chunk_results_blob("x", 0), layout.closed_results_blob("x", 0), layout.batch_output_blob("x"),
        layout.file_blob("x"), layout.poison_blob("x"))}
    assert {p.removeprefix("${jobsContainerName}/") for p in prefixes} == written == {"jobs/", "files/", "poison/"}
    # ... and not the inputs back ends upload for queue jobs (theirs to delete), nor the deployment
    # package or the host's containers (Flex Consumption runs the app from the deployment container).
    assert not any(p.startswith(("${deploymentContainerName}", "azure-webjobs")) or "inputs/" in p for p in prefixes)


@pytest.mark.parametrize("retention_days", [1, 7, DEFAULT_DATA_RETENTION_DAYS, 90, 365])
def test_policy_never_deletes_before_the_app_would(templates, retention_days):
    actions = _rule(templates)["definition"]["actions"]
    params = {"dataRetentionDays": int(retention_days)}
    base = _evaluate(templates, actions["baseBlob"]["delete"]["daysAfterModificationGreaterThan"], params)
    snapshots = _evaluate(templates, actions["snapshot"]["delete"]["daysAfterCreationGreaterThan"], params)
    assert base == snapshots
    assert base >= retention_days + BATCH_WINDOW_DAYS + 1, DELETE  # a day's slack for a missed hourly sweep
    assert base >= LONGEST_FILE_EXPIRY_DAYS + 1


def test_retention_parameter_defaults_to_the_app_setting(templates, app_settings_spec):
    defaults = {s["name"]: s.get("default") for s in app_settings_spec["settings"]}
    assert templates.param_default(STORAGE, "dataRetentionDays") == int(defaults["DATA_RETENTION_DAYS"])
    assert float(defaults["DATA_RETENTION_DAYS"]) == DEFAULT_DATA_RETENTION_DAYS
