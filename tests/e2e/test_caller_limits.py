"""Per-caller token limits through the local host, shared across two gateway instances via Table storage."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from devhost.ports import free_port
from devhost.stack import Stack
from tests.e2e.conftest import GATEWAY_ENV, ROOT, Sim

LIMIT = 1000
CHAT = "/api/v1/chat/completions"


def body(chars: int, max_tokens: int = 20) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "w" * chars}]}


@pytest.fixture(scope="module")
def instances(stack: Stack) -> Iterator[tuple[str, str]]:
    env = {**GATEWAY_ENV, "OPENAI_BASE_URL": f"{stack.simulator_url}/openai/v1", "AZURE_OPENAI_API_KEY": "local",
           "CALLER_TOKENS_PER_MINUTE": str(LIMIT), "AzureWebJobsStorage": stack.storage_connection_string or ""}
    with Stack(ROOT, free_port(), simulator=False, azurite=False, env=env) as one, \
            Stack(ROOT, free_port(), simulator=False, azurite=False, env=env) as two:
        yield one.host_url, two.host_url


def call(url: str, key: str, payload: dict[str, object]) -> httpx.Response:
    return httpx.post(url + CHAT, json=payload, headers={"x-functions-key": key}, timeout=30)


def test_a_caller_over_its_limit_gets_429_and_others_do_not(instances: tuple[str, str], sim: Sim) -> None:
    one, _ = instances
    first = call(one, "caller-a-1", body(1600))
    assert first.status_code == 200
    remaining = int(first.headers["x-caller-ratelimit-remaining-tokens"])
    assert LIMIT - 600 < remaining < LIMIT - 300  # ~400 prompt tokens + the reply, settled from real usage
    assert call(one, "caller-a-1", body(1600)).status_code == 200
    refused = call(one, "caller-a-1", body(1600))
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "caller_token_limit_exceeded" and error["type"] == "rate_limit_error"
    assert int(refused.headers["retry-after"]) >= 1 and refused.headers["x-request-id"]
    assert sim.stats()["counts"]["chat/completions"] == 2  # the refused call never reached the upstream
    assert call(one, "caller-b-1", body(1600)).status_code == 200  # another key, another budget


def test_limits_hold_across_instances(instances: tuple[str, str]) -> None:
    one, two = instances
    assert call(one, "caller-c-2", body(1600)).status_code == 200
    assert call(one, "caller-c-2", body(1600)).status_code == 200
    time.sleep(1.1)
    assert call(one, "caller-c-2", body(4)).status_code == 200  # publishes instance one's settled count
    time.sleep(0.3)
    assert call(two, "caller-c-2", body(4)).status_code == 200  # instance two learns the others' usage
    time.sleep(0.3)
    refused = call(two, "caller-c-2", body(1600))
    assert refused.status_code == 429, refused.text
