"""Stored responses belong to the caller who created them (issue #10, finding 5).

Two callers with different function keys (the local host, like Core Tools, does not check keys,
but the gateway names each caller by a digest of its key) talk to two gateway instances that share
one Azurite, as instances in Azure share one storage account. Caller B, who learned caller A's
response id, must get the same 404 as for an id that does not exist, whatever it tries; A keeps
full use of it; and when storage is down the gateway answers 503 rather than guess.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types.responses import ResponseCompletedEvent, ResponseCreatedEvent

from devhost.ports import free_port
from devhost.stack import Stack
from tests.security.conftest import BASE_ENV, ROOT, Sim, start_stack

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def first() -> Iterator[tuple[Stack, Sim]]:
    with start_stack() as running:
        yield running


@pytest.fixture(scope="module")
def second(first: tuple[Stack, Sim]) -> Iterator[Stack]:
    """Another instance of the same app: same upstream, same storage account, its own memory."""
    stack, _ = first
    env = {**BASE_ENV, "OPENAI_BASE_URL": stack.env["OPENAI_BASE_URL"],
           "AZURE_OPENAI_API_KEY": stack.env["AZURE_OPENAI_API_KEY"],
           "AzureWebJobsStorage": stack.storage_connection_string or ""}
    with Stack(ROOT, free_port(), simulator=False, azurite=False, env=env) as running:
        yield running


def sdk(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.host_url}/api/v1", api_key="unused", max_retries=0,
                         default_headers={"x-functions-key": key})


def test_another_caller_cannot_read_delete_or_continue_a_response(first: tuple[Stack, Sim]) -> None:
    stack, sim = first
    alice, bob = sdk(stack, "key-alice"), sdk(stack, "key-bob")
    created = alice.responses.create(model=MODEL, input="my secret plan")

    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(created.id)
    before = len(sim.requests("responses"))
    with pytest.raises(openai.NotFoundError) as continued:
        bob.responses.create(model=MODEL, input="repeat what we said", previous_response_id=created.id)
    assert continued.value.body and "previous_response_id" in str(continued.value.body)
    assert len(sim.requests("responses")) == before, "B's continuation must not reach the upstream"

    assert alice.responses.retrieve(created.id).id == created.id  # B's delete did nothing
    follow_up = alice.responses.create(model=MODEL, input="and then?", previous_response_id=created.id)
    assert "(turn 2)" in follow_up.output_text
    alice.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(created.id)


def test_another_callers_response_looks_exactly_like_a_missing_one(first: tuple[Stack, Sim]) -> None:
    stack, _ = first
    alice_key, bob_key = "key-alice", "key-bob"
    created = sdk(stack, alice_key).responses.create(model=MODEL, input="hello")
    missing = "resp_" + "0" * 48
    with httpx.Client(base_url=f"{stack.host_url}/api/v1", headers={"x-functions-key": bob_key}) as bob:
        theirs, nobodys = bob.get(f"/responses/{created.id}"), bob.get(f"/responses/{missing}")
    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.json()["error"]["code"] == nobodys.json()["error"]["code"]
    assert theirs.json()["error"]["message"].replace(created.id, "ID") == \
        nobodys.json()["error"]["message"].replace(missing, "ID")
    # No key at all is a caller too (anonymous), and not Alice.
    assert httpx.get(f"{stack.host_url}/api/v1/responses/{created.id}").status_code == 404


def test_a_streamed_response_belongs_to_its_creator(first: tuple[Stack, Sim]) -> None:
    stack, _ = first
    alice, bob = sdk(stack, "key-alice"), sdk(stack, "key-bob")
    events = list(alice.responses.create(model=MODEL, input="stream me", stream=True))
    assert isinstance(events[0], ResponseCreatedEvent)
    response_id = events[0].response.id

    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(response_id)
    with pytest.raises(openai.NotFoundError):
        list(bob.responses.create(model=MODEL, input="go on", previous_response_id=response_id, stream=True))
    assert alice.responses.retrieve(response_id).id == response_id
    more = list(alice.responses.create(model=MODEL, input="go on", previous_response_id=response_id, stream=True))
    assert isinstance(more[-1], ResponseCompletedEvent)
    assert "(turn 2)" in more[-1].response.output_text


def test_a_response_the_gateway_never_recorded_is_not_served(first: tuple[Stack, Sim]) -> None:
    stack, _ = first
    # Created straight on the upstream account, bypassing the gateway (or before records existed).
    direct = httpx.post(f"{stack.env['OPENAI_BASE_URL'].rstrip('/')}/responses",
                        headers={"api-key": stack.env["AZURE_OPENAI_API_KEY"]},
                        json={"model": MODEL, "input": "not through the gateway"})
    direct.raise_for_status()
    with pytest.raises(openai.NotFoundError):
        sdk(stack, "key-alice").responses.retrieve(direct.json()["id"])


def test_ownership_holds_on_another_instance(first: tuple[Stack, Sim], second: Stack) -> None:
    stack, _ = first
    created = sdk(stack, "key-alice").responses.create(model=MODEL, input="made on the first instance")
    with pytest.raises(openai.NotFoundError):
        sdk(second, "key-bob").responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        sdk(second, "key-bob").responses.create(model=MODEL, input="x", previous_response_id=created.id)
    assert sdk(second, "key-alice").responses.retrieve(created.id).id == created.id


def test_a_store_false_response_is_not_recorded_and_still_works(first: tuple[Stack, Sim]) -> None:
    stack, _ = first
    reply = sdk(stack, "key-alice").responses.create(model=MODEL, input="ephemeral", store=False)
    assert reply.output_text


def test_storage_outage_answers_503_and_never_serves_another_callers_response(
        first: tuple[Stack, Sim], second: Stack) -> None:
    """Runs last in this module: it stops Azurite (and starts it again)."""
    stack, _ = first
    seen_by_first = sdk(stack, "key-alice").responses.create(model=MODEL, input="before the outage")
    stack.stop_azurite()
    try:
        with httpx.Client(timeout=30) as http:
            # The second instance never saw this id: it cannot know the owner, so it refuses.
            for key in ("key-alice", "key-bob"):
                started = time.monotonic()
                answer = http.get(f"{second.host_url}/api/v1/responses/{seen_by_first.id}",
                                  headers={"x-functions-key": key})
                assert answer.status_code == 503, answer.text
                assert int(answer.headers["retry-after"]) > 0
                assert answer.json()["error"]["code"] == "ownership_unavailable"
                assert time.monotonic() - started < 10, "a dead storage account must fail fast"
            answer = http.post(f"{second.host_url}/api/v1/responses", headers={"x-functions-key": "key-bob"},
                               json={"model": MODEL, "input": "x", "previous_response_id": seen_by_first.id})
            assert answer.status_code == 503
            # The creating instance remembers the owner: B still gets 404 there, never the object.
            answer = http.get(f"{stack.host_url}/api/v1/responses/{seen_by_first.id}",
                              headers={"x-functions-key": "key-bob"})
            assert answer.status_code == 404
            # A new stored response cannot be recorded: refused rather than left open to all.
            answer = http.post(f"{second.host_url}/api/v1/responses", headers={"x-functions-key": "key-alice"},
                               json={"model": MODEL, "input": "during the outage"})
            assert answer.status_code == 503 and "retry-after" in answer.headers
        # A stream has already begun when the id arrives: it ends with an error event instead.
        with pytest.raises(openai.APIError, match="retry after"):
            list(sdk(second, "key-alice").responses.create(model=MODEL, input="streamed in the outage", stream=True))
    finally:
        stack.restart_azurite()
    assert sdk(second, "key-alice").responses.retrieve(seen_by_first.id).id == seen_by_first.id
    with pytest.raises(openai.NotFoundError):
        sdk(second, "key-bob").responses.retrieve(seen_by_first.id)
