"""The whole Responses API through the running local host (issue #12), with both official SDKs:
create, retrieve (``include[]``, ``include_obfuscation``), delete, input items (``limit``, ``order``,
``after``, ``before``), background mode (polling, cancel, resumed streams) and ``models.retrieve``.

One stack for the module: the local host, Azurite and two simulators as two backends, so that every
operation must find the backend that holds the response (affinity). Each caller is a function key
(``x-functions-key``): a response is its creator's alone. Per-caller token limits are on, so that a
background response's reservation is seen settled by polling, a resumed stream and a cancel.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from devhost.ports import free_ports
from devhost.stack import Stack
from simulator.harness import SimulatorProcess
from tests.e2e.test_upstream_fidelity import _node_with_openai
from tests.security.conftest import BASE_ENV, ROOT

MODEL = "gpt-4o-mini"
LIMIT = 200_000
PROBE = {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
JS_RESPONSES = Path(__file__).with_name("js_responses.mjs")


@pytest.fixture(scope="module")
def primary() -> Iterator[SimulatorProcess]:
    with SimulatorProcess.start() as sim:
        yield sim


@pytest.fixture(scope="module")
def secondary() -> Iterator[SimulatorProcess]:
    with SimulatorProcess.start() as sim:
        yield sim


@pytest.fixture(scope="module")
def gateway(primary: SimulatorProcess, secondary: SimulatorProcess) -> Iterator[str]:
    backends = [
        {"name": "first", "base_url": primary.api_url, "priority": 0, "api_key_setting": "SIM_KEY"},
        {"name": "second", "base_url": secondary.api_url, "priority": 1, "api_key_setting": "SIM_KEY"},
    ]
    host, blob, queue, table = free_ports(4)
    env = {**BASE_ENV, "OPENAI_BACKENDS": json.dumps(backends), "SIM_KEY": "local",
           "CALLER_TOKENS_PER_MINUTE": str(LIMIT), "RETRY_MAX_WAIT_SECONDS": "1"}
    with Stack(ROOT, host, simulator=False, azurite=True, azurite_ports=(blob, queue, table), env=env) as running:
        yield running.host_url


@pytest.fixture
def sims(primary: SimulatorProcess, secondary: SimulatorProcess) -> tuple[SimulatorProcess, SimulatorProcess]:
    for sim in (primary, secondary):
        sim.reset()
    return primary, secondary


@pytest.fixture
def key() -> str:
    return "key-" + uuid.uuid4().hex


def sdk(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}/api/v1", api_key="local", max_retries=0,
                         default_headers={"x-functions-key": key})


@pytest.fixture
def client(gateway: str, sims: Any, key: str) -> openai.OpenAI:
    return sdk(gateway, key)


@pytest.fixture
def http(gateway: str, sims: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{gateway}/api/v1", timeout=30) as client:
        yield client


def seen_by(sim: SimulatorProcess, route: str) -> list[dict[str, Any]]:
    recent: list[dict[str, Any]] = sim.stats(route)["recent"]
    return recent


def finished(client: openai.OpenAI, response_id: str) -> Any:
    for _ in range(200):
        response = client.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress"):
            return response
        time.sleep(0.05)
    raise AssertionError(f"{response_id} never finished")


def test_every_operation_from_the_python_sdk(client: openai.OpenAI, sims: Any) -> None:
    turns = [{"role": "user", "content": f"turn {n}"} for n in range(5)]
    created = client.responses.create(model=MODEL, input=turns, background=True,  # type: ignore[arg-type]
                                      max_output_tokens=100)
    assert created.status == "queued"
    done = finished(client, created.id)
    assert done.status == "completed" and done.output_text
    detailed = client.responses.retrieve(created.id, include=["message.output_text.logprobs"],
                                         include_obfuscation=False)
    assert detailed.id == created.id
    # Input items, paged by the SDK (after=) in both orders, and a page before a cursor.
    ascending = list(client.responses.input_items.list(created.id, order="asc", limit=2))
    assert [item.content[0].text for item in ascending] == [f"turn {n}" for n in range(5)]  # type: ignore[index,union-attr]
    newest = client.responses.input_items.list(created.id, limit=2)
    assert [item.content[0].text for item in newest.data] == ["turn 4", "turn 3"]  # type: ignore[index,union-attr]
    before = client.responses.input_items.list(created.id, order="asc", limit=2,
                                               extra_query={"before": ascending[3].id})
    assert [item.content[0].text for item in before.data] == ["turn 1", "turn 2"]  # type: ignore[index,union-attr]
    # The background response's events, again, from after event 3.
    events = list(client.responses.retrieve(created.id, stream=True, starting_after=3))
    assert events[0].sequence_number == 4 and events[-1].type == "response.completed"
    deleted = client.responses.delete(created.id)
    assert deleted is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    assert client.models.retrieve(MODEL).id == MODEL
    assert client.models.retrieve("chat").id == "chat"  # an alias is a model callers may use
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-4o")  # not in OPENAI_MODELS
    assert info.value.code == "model_not_found"


def test_cancel_a_running_background_response(client: openai.OpenAI, sims: Any) -> None:
    for sim in sims:
        sim.configure(ttft_ms=2000)
    running = client.responses.create(model=MODEL, input="long", background=True, max_output_tokens=100)
    cancelled = client.responses.cancel(running.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(running.id).status == "cancelled"
    events = list(client.responses.retrieve(running.id, stream=True))
    assert events[-1].type == "error" and events[-1].code == "response_cancelled"  # type: ignore[union-attr]
    plain = client.responses.create(model=MODEL, input="now")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(plain.id)  # the upstream's own answer, relayed


def test_every_operation_from_the_javascript_sdk(gateway: str, sims: Any, key: str) -> None:
    node = _node_with_openai()
    for sim in sims:
        sim.configure(ttft_ms=150, token_delay_ms=10)
    done = subprocess.run([node, str(JS_RESPONSES), f"{gateway}/api/v1", MODEL, key], capture_output=True,
                          text=True, timeout=90, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["created"] == "queued" and seen["polled"] == ["completed", True]
    assert seen["retrievedWithQuery"] is True
    assert seen["inputItems"] == ["first question", "first answer", "second question"]
    assert seen["resumed"][0][0] == 3 and seen["resumed"][-1][1] == "response.completed"
    assert [number for number, _ in seen["resumed"]] == list(range(3, 3 + len(seen["resumed"])))
    assert seen["cancelled"] == "cancelled"
    assert seen["afterDelete"] == [404, "not_found"]
    assert seen["model"] == MODEL and seen["unknownModel"] == [404, "model_not_found"]


# --- query parameters: checked, then relayed re-encoded ----------------------------------------------

def _stored(client: openai.OpenAI) -> str:
    return client.responses.create(model=MODEL, input=[{"role": "user", "content": "a"},  # type: ignore[list-item]
                                                       {"role": "user", "content": "b"}]).id


@pytest.mark.parametrize(("query", "code", "param"), [
    ("limitt=2", "unknown_parameter", "limitt"),
    ("api-version=preview", "invalid_query_parameter", "api-version"),
    ("limit=0", "invalid_query_parameter", "limit"),
    ("limit=101", "invalid_query_parameter", "limit"),
    ("limit=%2B5", "invalid_query_parameter", "limit"),
    ("order=random", "invalid_query_parameter", "order"),
    ("limit=2&limit=3", "invalid_query_parameter", "limit"),
    ("include%5B%5D=everything", "invalid_query_parameter", "include[]"),
    ("after=", "invalid_query_parameter", "after"),
])
def test_a_bad_input_items_query_is_refused_before_the_upstream(
        client: openai.OpenAI, http: httpx.Client, key: str, sims: Any, query: str, code: str, param: str) -> None:
    response_id = _stored(client)
    reply = http.get(f"/responses/{response_id}/input_items?{query}", headers={"x-functions-key": key})
    assert reply.status_code == 400, reply.text
    assert (reply.json()["error"]["code"], reply.json()["error"]["param"]) == (code, param)
    assert not any(seen_by(sim, "responses/{id}/input_items") for sim in sims)


@pytest.mark.parametrize(("path", "query", "code", "param"), [
    ("/chat/completions", "stream=true", "unknown_parameter", "stream"),
    ("/chat/completions", "api-version=preview", "invalid_query_parameter", "api-version"),
    ("/responses", "model=other", "unknown_parameter", "model"),
    ("/embeddings", "api-version=2024-10-21", "invalid_query_parameter", "api-version"),
])
def test_a_query_on_a_body_route_is_refused_never_dropped(
        http: httpx.Client, key: str, sims: Any, path: str, query: str, code: str, param: str) -> None:
    # A POST route reads no query; something added to its URL (a second ``stream``, Azure's preview
    # api-version) must not be silently ignored while the caller believes it applied.
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "input": "hi"}
    reply = http.post(f"{path}?{query}", headers={"x-functions-key": key}, json=body)
    assert reply.status_code == 400, reply.text
    assert (reply.json()["error"]["code"], reply.json()["error"]["param"]) == (code, param)
    assert reply.headers.get("x-request-id")
    assert not any(seen_by(sim, path.lstrip("/")) for sim in sims)


def test_azures_api_version_v1_is_accepted_on_every_route(gateway: str, key: str) -> None:
    # Microsoft's v1 samples pass default_query={"api-version": ...}; "v1" is what the gateway serves.
    client = openai.OpenAI(base_url=f"{gateway}/api/v1", api_key="local", default_headers={"x-functions-key": key},
                           default_query={"api-version": "v1"}, max_retries=0)
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content
    stored = client.responses.create(model=MODEL, input="hi")
    assert client.responses.retrieve(stored.id).id == stored.id
    assert [item.id for item in client.responses.input_items.list(stored.id)]
    assert client.models.list().data


@pytest.mark.parametrize(("query", "param"), [
    ("stream=false%26stream%3Dtrue", "stream"),  # a second stream hidden inside the first value
    ("stream=true&stream=false", "stream"),
    ("stream=1", "stream"),
    ("stream=true&starting_after=-1", "starting_after"),
    ("include_obfuscation=no", "include_obfuscation"),
])
def test_a_bad_retrieve_query_is_refused_before_the_upstream(
        client: openai.OpenAI, http: httpx.Client, key: str, sims: Any, query: str, param: str) -> None:
    response_id = _stored(client)
    before = sum(len(seen_by(sim, "responses/{id}")) for sim in sims)
    reply = http.get(f"/responses/{response_id}?{query}", headers={"x-functions-key": key})
    assert reply.status_code == 400, reply.text
    assert (reply.json()["error"]["code"], reply.json()["error"]["param"]) == ("invalid_query_parameter", param)
    assert sum(len(seen_by(sim, "responses/{id}")) for sim in sims) == before


def test_the_upstream_gets_the_checked_query_re_encoded_and_never_the_function_key(
        client: openai.OpenAI, http: httpx.Client, key: str, sims: Any) -> None:
    response_id = _stored(client)
    reply = http.get(f"/responses/{response_id}/input_items",
                     params=[("include[]", "message.input_image.image_url"), ("code", "the-function-key"),
                             ("limit", "1"), ("order", "asc"), ("include[]", "message.input_image.image_url")],
                     headers={"x-functions-key": key})
    assert reply.status_code == 200, reply.text
    assert reply.json()["data"][0]["content"][0]["text"] == "a"
    (listed,) = [record for sim in sims for record in seen_by(sim, "responses/{id}/input_items")]
    # Rebuilt from the checked values: the repeated include once, the function key not at all.
    assert listed["query"] == "include%5B%5D=message.input_image.image_url&limit=1&order=asc"
    reply = http.get(f"/responses/{response_id}?include_obfuscation=false&code=k", headers={"x-functions-key": key})
    assert reply.status_code == 200
    (retrieved,) = [record for sim in sims for record in seen_by(sim, "responses/{id}")]
    assert retrieved["query"] == "include_obfuscation=false"


# --- owned by its creator, served by the backend that holds it ---------------------------------------

def test_another_caller_finds_nothing(client: openai.OpenAI, gateway: str, http: httpx.Client, sims: Any) -> None:
    created = client.responses.create(model=MODEL, input="mine", background=True, max_output_tokens=50)
    stranger = sdk(gateway, "key-" + uuid.uuid4().hex)
    before = {route: sum(len(seen_by(sim, route)) for sim in sims)
              for route in ("responses/{id}", "responses/{id}/cancel", "responses/{id}/input_items")}
    attempts = [lambda: stranger.responses.retrieve(created.id),
                lambda: list(stranger.responses.retrieve(created.id, stream=True)),
                lambda: stranger.responses.cancel(created.id),
                lambda: stranger.responses.input_items.list(created.id),
                lambda: stranger.responses.delete(created.id)]
    for attempt in attempts:
        with pytest.raises(openai.NotFoundError) as info:
            attempt()
        assert info.value.code == "not_found"
    for route, count in before.items():
        assert sum(len(seen_by(sim, route)) for sim in sims) == count, f"a stranger's call reached {route}"
    assert finished(client, created.id).status == "completed"  # still there for its creator


def test_each_operation_goes_to_the_backend_that_holds_the_response(client: openai.OpenAI, sims: Any) -> None:
    first, second = sims
    # The first backend is throttled for the create: it fails over, and the response lives on the second.
    first.add_faults({"kind": "status", "status": 429, "retry_after_ms": 100, "path": "responses"})
    first.configure(ttft_ms=3000)
    second.configure(ttft_ms=3000)
    created = client.responses.create(model=MODEL, input="where", background=True, max_output_tokens=50)
    time.sleep(0.2)  # the first backend is ready again: only affinity can send what follows to the second
    client.responses.retrieve(created.id)
    client.responses.input_items.list(created.id)
    client.responses.cancel(created.id)
    assert list(client.responses.retrieve(created.id, stream=True, starting_after=0))[-1].type == "error"
    for route in ("responses/{id}", "responses/{id}/cancel", "responses/{id}/input_items"):
        assert seen_by(first, route) == [], f"{route} went to the wrong backend"
        assert seen_by(second, route), route


# --- a background response's reservation, settled when it is seen finished ------------------------

def charged(http: httpx.Client, key: str) -> int:
    """Tokens the key's budget holds, read from a probe's ``x-caller-ratelimit-remaining-tokens``
    (the probe's own reservation, ``ceil(len(body) / 4) + 1``, taken off)."""
    reply = http.post("/chat/completions", content=json.dumps(PROBE).encode(),
                      headers={"x-functions-key": key, "content-type": "application/json"})
    assert reply.status_code == 200, reply.text
    return LIMIT - int(reply.headers["x-caller-ratelimit-remaining-tokens"]) - (-(-len(json.dumps(PROBE)) // 4) + 1)


@pytest.fixture
def same_minute() -> None:
    """A test must not straddle a minute: the sliding window would fade part of what it checks."""
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)


@pytest.mark.usefixtures("same_minute")
def test_a_resumed_stream_that_finishes_settles_the_reservation(
        client: openai.OpenAI, http: httpx.Client, key: str, sims: Any) -> None:
    for sim in sims:
        sim.configure(ttft_ms=300, reply_tokens=20)
    created = client.responses.create(model=MODEL, input="w" * 400, background=True, max_output_tokens=5000)
    assert charged(http, key) >= 5000  # nothing known yet: the reservation stands
    events = list(client.responses.retrieve(created.id, stream=True))
    assert events[-1].type == "response.completed"
    usage = events[-1].response.usage  # type: ignore[union-attr]
    assert usage is not None
    time.sleep(0.3)  # the relay settles as the last event passes; let the probe come after it
    assert charged(http, key) == usage.total_tokens + 2  # its real use, plus the first probe's (1 + 1)


@pytest.mark.usefixtures("same_minute")
def test_a_cancel_settles_the_reservation_at_what_was_generated(
        client: openai.OpenAI, http: httpx.Client, key: str, sims: Any) -> None:
    for sim in sims:
        sim.configure(ttft_ms=2000)
    created = client.responses.create(model=MODEL, input="w" * 400, background=True, max_output_tokens=5000)
    cancelled = client.responses.cancel(created.id)  # at once: a probe first would take the 2 s itself
    assert cancelled.status == "cancelled" and cancelled.usage is not None
    for sim in sims:
        sim.configure(ttft_ms=0)
    assert cancelled.usage.total_tokens < 5000
    assert charged(http, key) == cancelled.usage.total_tokens
