"""One style for process-wide objects, one reset: ``forget_process_state`` rebuilds every one of them
from the environment as it is now."""

from __future__ import annotations

import pytest

from shared import backends, config, cors, ownership, quota, retry, storage, telemetry
from shared.jobs import pacer
from shared.lazy import forget_process_state, process_wide

GETTERS = [config.get_settings, retry.get_retry_policy, backends.get_backend_pool, storage.get_storage,
           ownership.get_owners, quota.get_quota, telemetry.tracer, cors.app_hostnames]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("CALLER_TOKENS_PER_MINUTE", "1000")
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    forget_process_state()


def test_each_getter_builds_once_and_forgetting_builds_again() -> None:
    first = [get() for get in GETTERS]
    assert all(get() is value for get, value in zip(GETTERS, first, strict=True))
    forget_process_state()
    again = [get() for get in GETTERS]
    # None (telemetry off) and frozen values compare equal; objects are new ones.
    assert all(a is not b for a, b in zip(first, again, strict=True) if a is not None and not isinstance(a, frozenset))


def test_forgetting_reads_the_environment_again(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.get_settings().caller_tokens_per_minute == 1000
    assert quota.get_quota() is not None
    monkeypatch.setenv("CALLER_TOKENS_PER_MINUTE", "0")
    assert quota.get_quota() is not None, "built once: a changed environment is not seen until forgotten"
    forget_process_state()
    assert config.get_settings().caller_tokens_per_minute == 0 and quota.get_quota() is None


def test_keyed_objects_are_one_per_key() -> None:
    assert pacer.get_pacer("a") is pacer.get_pacer("a") and pacer.get_pacer("a") is not pacer.get_pacer("b")
    before = pacer.get_pacer("a")
    forget_process_state()
    assert pacer.get_pacer("a") is not before


def test_a_new_process_wide_getter_is_forgotten_too() -> None:
    built: list[int] = []

    @process_wide
    def counter() -> int:
        built.append(1)
        return len(built)

    assert counter() == counter() == 1
    forget_process_state()
    assert counter() == 2
