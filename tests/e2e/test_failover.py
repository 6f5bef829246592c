"""Several upstream deployments: failover without sleeping, cool-downs that follow retry-after(-ms),
429 with the soonest recovery when all are cooling, and Responses affinity."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from devhost.ports import free_port
from devhost.stack import Stack
from simulator.harness import SimulatorProcess
from tests.e2e.conftest import GATEWAY_ENV, ROOT

MESSAGES = [{"role": "user", "content": "hi"}]
# Cool-downs are per deployment and live as long as the gateway process: each test gets its own
# deployment so that one test's throttling cannot leak into the next.
DEPLOYMENTS = [f"dep{i}" for i in range(12)]
SIM_ARGS = ("--models", ",".join(["text-embedding-3-small", *DEPLOYMENTS]))
_next = iter(DEPLOYMENTS)


@pytest.fixture(scope="module")
def primary() -> Iterator[SimulatorProcess]:
    with SimulatorProcess.start(*SIM_ARGS) as sim:
        yield sim


@pytest.fixture(scope="module")
def secondary() -> Iterator[SimulatorProcess]:
    with SimulatorProcess.start(*SIM_ARGS) as sim:
        yield sim


@pytest.fixture(scope="module")
def gateway(stack: Stack, primary: SimulatorProcess, secondary: SimulatorProcess) -> Iterator[str]:
    backends = [
        {"name": "ptu", "base_url": primary.api_url, "priority": 0, "api_key_setting": "SIM_KEY"},
        {"name": "paygo", "base_url": secondary.api_url, "priority": 1, "api_key_setting": "SIM_KEY"},
    ]
    env = {**GATEWAY_ENV, "OPENAI_BACKENDS": json.dumps(backends), "SIM_KEY": "local",
           "OPENAI_MODELS": ",".join(["text-embedding-3-small", *DEPLOYMENTS]),
           "RETRY_MAX_WAIT_SECONDS": "1", "AzureWebJobsStorage": stack.storage_connection_string or ""}
    with Stack(ROOT, free_port(), simulator=False, azurite=False, env=env) as running:
        yield f"{running.host_url}/api/v1"


class Client:
    """The SDK bound to this test's own deployment."""

    def __init__(self, sdk: openai.OpenAI, model: str) -> None:
        self.sdk, self.model = sdk, model


@pytest.fixture
def client(gateway: str, primary: SimulatorProcess, secondary: SimulatorProcess) -> Client:
    primary.reset()
    secondary.reset()
    return Client(openai.OpenAI(base_url=gateway, api_key="local", max_retries=0), next(_next))


def count(sim: SimulatorProcess, route: str = "chat/completions") -> int:
    return int(sim.stats()["counts"].get(route, 0))


def chat(client: Client) -> float:
    started = time.monotonic()
    client.sdk.chat.completions.create(model=client.model, messages=MESSAGES)
    return time.monotonic() - started


def test_healthy_primary_takes_everything(client: Client, primary: SimulatorProcess,
                                          secondary: SimulatorProcess) -> None:
    for _ in range(3):
        chat(client)
    assert (count(primary), count(secondary)) == (3, 0)


def test_429_fails_over_at_once_and_cools_for_retry_after_ms(
        client: Client, primary: SimulatorProcess, secondary: SimulatorProcess) -> None:
    primary.add_faults({"path": "chat/completions", "kind": "status", "status": 429, "retry_after_ms": 1500})
    assert chat(client) < 0.5, "failover must not wait for the primary's retry-after"
    assert (count(primary), count(secondary)) == (1, 1)
    chat(client)  # still cooling: straight to the secondary, the primary is not asked
    assert (count(primary), count(secondary)) == (1, 2)
    first_429 = primary.stats("chat/completions")["recent"][0]["received_at"]
    time.sleep(max(0.0, first_429 + 1.6 - time.monotonic()))
    chat(client)  # cool-down over: back to the primary
    assert (count(primary), count(secondary)) == (2, 2)


def test_all_cooling_answers_429_with_the_soonest_recovery(
        client: Client, primary: SimulatorProcess, secondary: SimulatorProcess) -> None:
    primary.add_faults({"path": "chat/completions", "kind": "status", "status": 429, "retry_after_ms": 3000})
    secondary.add_faults({"path": "chat/completions", "kind": "status", "status": 429, "retry_after_ms": 2000})
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as info:
        client.sdk.chat.completions.create(model=client.model, messages=MESSAGES)
    assert time.monotonic() - started < 1.0, "no sleeping when every backend is throttled for longer than we wait"
    assert 1500 <= int(info.value.response.headers["retry-after-ms"]) <= 2000
    # Within the cool-down the gateway answers 429 itself, without spending upstream quota.
    with pytest.raises(openai.RateLimitError) as again:
        client.sdk.chat.completions.create(model=client.model, messages=MESSAGES)
    assert again.value.code == "rate_limit_exceeded"
    assert int(again.value.response.headers["retry-after"]) in (1, 2)
    assert (count(primary), count(secondary)) == (1, 1)


def test_5xx_fails_over_without_backoff(client: Client, primary: SimulatorProcess,
                                        secondary: SimulatorProcess) -> None:
    primary.add_faults({"path": "chat/completions", "kind": "status", "status": 503})
    assert chat(client) < 0.5
    assert (count(primary), count(secondary)) == (1, 1)


def test_cooldowns_are_per_deployment(client: Client, primary: SimulatorProcess,
                                      secondary: SimulatorProcess) -> None:
    primary.add_faults({"path": "chat/completions", "kind": "status", "status": 429, "retry_after_ms": 5000})
    chat(client)  # the chat deployment cools down on the primary; embeddings stay there
    client.sdk.embeddings.create(model="text-embedding-3-small", input="x")
    assert count(primary, "embeddings") == 1 and count(secondary, "embeddings") == 0


def test_responses_affinity_follows_the_creating_backend(
        client: Client, primary: SimulatorProcess, secondary: SimulatorProcess) -> None:
    primary.add_faults({"path": "responses", "kind": "status", "status": 429, "retry_after_ms": 300})
    first = client.sdk.responses.create(model=client.model, input="remember me")  # lands on the secondary
    time.sleep(0.4)  # the primary is healthy again
    second = client.sdk.responses.create(model=client.model, input="and now?", previous_response_id=first.id)
    assert "(turn 2)" in second.output_text
    assert client.sdk.responses.retrieve(second.id).id == second.id
    assert count(secondary, "responses") == 2 and count(primary, "responses") == 1
    stream = list(client.sdk.responses.create(model=client.model, input="third", previous_response_id=second.id,
                                              stream=True))
    assert "(turn 3)" in stream[-1].response.output_text


def _record_owner(connection: str, response_id: str, caller: str) -> None:
    """What the gateway instance that created a response writes to the shared ownership table."""
    from azure.data.tables.aio import TableServiceClient

    from shared.ownership import TABLE, TableOwnerStore

    async def write() -> None:
        async with TableServiceClient.from_connection_string(connection) as service:
            await TableOwnerStore(service.get_table_client(TABLE)).insert(response_id, caller)

    asyncio.run(write())


def test_a_response_created_elsewhere_is_found_by_probing(
        client: Client, primary: SimulatorProcess, secondary: SimulatorProcess, stack: Stack) -> None:
    # Created straight on the secondary, and recorded as another gateway instance would have
    # (this SDK client sends no function key: the caller is "anonymous").
    created = httpx.post(f"{secondary.api_url}/responses", headers={"api-key": "x"},
                         json={"model": client.model, "input": "elsewhere"}).json()
    _record_owner(stack.storage_connection_string or "", created["id"], "anonymous")
    assert client.sdk.responses.retrieve(created["id"]).id == created["id"]
    client.sdk.responses.delete(created["id"])
    with pytest.raises(openai.NotFoundError):
        client.sdk.responses.retrieve(created["id"])


def test_a_dead_backend_is_skipped(stack: Stack, secondary: SimulatorProcess) -> None:
    secondary.reset()
    backends = [
        {"name": "dead", "base_url": f"http://127.0.0.1:{free_port()}/v1", "priority": 0, "api_key_setting": "K"},
        {"name": "alive", "base_url": secondary.api_url, "priority": 1, "api_key_setting": "K"},
    ]
    env = {**GATEWAY_ENV, "OPENAI_BACKENDS": json.dumps(backends), "K": "local", "OPENAI_MODELS": ",".join(DEPLOYMENTS),
           "AzureWebJobsStorage": stack.storage_connection_string or ""}
    with Stack(ROOT, free_port(), simulator=False, azurite=False, env=env) as running:
        client = Client(openai.OpenAI(base_url=f"{running.host_url}/api/v1", api_key="local", max_retries=0),
                        next(_next))
        for _ in range(3):
            assert chat(client) < 1.0
    assert count(secondary) == 3
