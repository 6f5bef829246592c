"""Per-caller token limits through the running local host: a caller is charged what it used.

Attacks from issue #10: streams that report no usage (no ``stream_options``), streams closed before
their end (chat and Responses), an upstream that reports no usage at all, background responses, and
many concurrent requests without ``max_tokens`` against a small limit, where the overshoot must stay
within the bound the README states (README "Token limits"):

    use in a window <= limit + sum over the requests in flight of max(0, use - reservation)

so with every reply within the output allowance there is no overshoot at all, and with replies of R
tokens, k concurrent requests overshoot by at most k * (R - allowance).

What a caller is charged is read from its budget: ``x-caller-ratelimit-remaining-tokens`` of a small
probe request (key in the header) minus the probe's own reservation.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from devhost.stack import Stack
from shared.config import DEFAULT_CALLER_OUTPUT_TOKEN_ALLOWANCE as ALLOWANCE
from tests.security.conftest import Sim, start_stack

LIMIT = 20_000
CHAT = "/api/v1/chat/completions"
RESPONSES = "/api/v1/responses"
PROMPT = "w" * 400  # the simulator counts ceil(chars / 4): 100 prompt tokens
PROBE = {"model": "gpt-4o-mini", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def reserved(body: dict[str, Any], output: int) -> int:
    """What the gateway reserves for ``body`` as sent: its size / 4 plus the output cap or allowance."""
    return -(-len(encoded(body)) // 4) + output


def post(http: httpx.Client, path: str, body: dict[str, Any], key: str) -> httpx.Response:
    return http.post(path, content=encoded(body), headers={"x-functions-key": key, "content-type": "application/json"})


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[Stack, Sim]]:
    with start_stack({"CALLER_TOKENS_PER_MINUTE": str(LIMIT)}) as started:
        yield started


@pytest.fixture
def sim(running: tuple[Stack, Sim]) -> Sim:
    running[1].reset()
    return running[1]


@pytest.fixture
def http(running: tuple[Stack, Sim], sim: Sim) -> Iterator[httpx.Client]:
    # A test must not straddle a minute: the sliding window would fade part of what it checks.
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)
    with httpx.Client(base_url=running[0].host_url, timeout=60) as client:
        yield client


def new_key() -> str:
    return "key-" + uuid.uuid4().hex


PROBE_USE = 2  # a probe settles at its real use, as the simulator reports it: 1 prompt + 1 output token
_probes: dict[str, int] = {}


def charged(http: httpx.Client, key: str, settle_wait: float = 5.0) -> int:
    """Tokens the key's budget holds for its requests (not the probes), once they have settled:
    probed until two readings agree (a stream settles when its relay ends, just after its last byte)."""
    deadline, last = time.monotonic() + settle_wait, None
    while True:
        response = post(http, CHAT, PROBE, key)
        assert response.status_code == 200, response.text
        earlier = _probes.get(key, 0)
        _probes[key] = earlier + 1
        value = LIMIT - int(response.headers["x-caller-ratelimit-remaining-tokens"]) - reserved(PROBE, 1)
        value -= earlier * PROBE_USE
        if value == last or time.monotonic() > deadline:
            return value
        last = value
        time.sleep(0.2)


def sse_events(raw: bytes) -> list[bytes]:
    return [event for event in raw.split(b"\n\n") if event]


def normalized(raw: bytes) -> bytes:
    """A stream with the parts that differ per call (ids, timestamps) blanked."""
    raw = re.sub(rb'"id":\s*"[^"]*"', b'"id":""', raw)
    return re.sub(rb'"created":\s*\d+', b'"created":0', raw)


def test_a_chat_stream_without_stream_options_is_charged_its_real_usage(
        running: tuple[Stack, Sim], sim: Sim, http: httpx.Client) -> None:
    """Was: ~21 tokens per 5,000-token stream. The gateway now asks for the usage chunk and strips it."""
    sim.configure(reply_tokens=300)
    key = new_key()
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    relayed = post(http, CHAT, body, key).content
    assert charged(http, key) == 100 + 300  # the upstream's own count, not the estimate
    # Byte for byte the stream the caller would have had: no usage chunk, no "usage":null, same [DONE].
    direct = httpx.post(f"{running[0].simulator_url}/openai/v1/chat/completions", content=encoded(body),
                        headers={"api-key": "local"}, timeout=30).content
    assert b'"usage"' not in relayed and relayed.endswith(b"data: [DONE]\n\n")
    assert normalized(relayed) == normalized(direct)


def test_a_caller_that_asks_for_usage_still_gets_it(sim: Sim, http: httpx.Client) -> None:
    key = new_key()
    body = {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": PROMPT}]}
    events = sse_events(post(http, CHAT, body, key).content)
    assert b'"usage":{"prompt_tokens":100,"completion_tokens":20' in events[-2] and events[-1] == b"data: [DONE]"
    assert charged(http, key) == 120


def test_a_responses_stream_is_charged_its_real_usage(sim: Sim, http: httpx.Client) -> None:
    sim.configure(reply_tokens=300)
    key = new_key()
    post(http, RESPONSES, {"model": "gpt-4o-mini", "stream": True, "input": PROMPT}, key).raise_for_status()
    assert charged(http, key) == 100 + 300


@pytest.mark.parametrize("path", [CHAT, RESPONSES])
def test_a_stream_closed_early_is_charged_at_least_its_reservation(
        running: tuple[Stack, Sim], sim: Sim, http: httpx.Client, path: str) -> None:
    """Was: the ~prompt-size estimate. Closing before the usage event must not make a stream cheap."""
    sim.configure(reply_tokens=3000, token_delay_ms=20)  # a minute of output if nobody stops it
    key = new_key()
    body: dict[str, Any] = {"model": "gpt-4o-mini", "stream": True}
    body.update({"messages": [{"role": "user", "content": PROMPT}]} if path == CHAT else {"input": PROMPT})
    with http.stream("POST", path, content=encoded(body),
                     headers={"x-functions-key": key, "content-type": "application/json"}) as response:
        assert response.status_code == 200
        for seen, _ in enumerate(response.iter_raw()):
            if seen == 5:
                break
    assert charged(http, key) == reserved(body, ALLOWANCE)
    deadline = time.monotonic() + 5  # and the upstream was told to stop
    route = "chat/completions" if path == CHAT else "responses"
    while not sim.requests(route)[0].get("cancelled") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sim.requests(route)[0]["cancelled"]


@pytest.mark.parametrize("stream", [True, False])
def test_an_upstream_that_reports_no_usage_is_never_cheaper_than_the_reservation(
        sim: Sim, http: httpx.Client, stream: bool) -> None:
    sim.configure(omit_usage=True, reply_tokens=20)
    key = new_key()
    body = {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": PROMPT}]}
    post(http, CHAT, body, key).raise_for_status()
    sim.configure(omit_usage=False)  # for the probes, which must settle at their real use
    assert charged(http, key) == reserved(body, ALLOWANCE)


def test_an_upstream_that_reports_no_usage_is_charged_what_it_relayed(sim: Sim, http: httpx.Client) -> None:
    """Output beyond the allowance, with no usage to say so: counted from the relayed text."""
    sim.configure(omit_usage=True, reply_tokens=6000)
    key = new_key()
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    relayed = post(http, CHAT, body, key).content
    assert relayed.count(b'"delta":{"content":"') == 6000  # one chunk per word (the role chunk differs)
    sim.configure(omit_usage=False)  # for the probes, which must settle at their real use
    used = charged(http, key)
    assert used >= reserved(body, 0) + 6000  # at least a token per relayed piece: never below the real use
    assert used <= reserved(body, 0) + 4 * 6000


@pytest.mark.parametrize(("reply", "stream"), [(5000, True), (5000, False), (1000, True)])
def test_concurrent_requests_without_max_tokens_overshoot_at_most_the_stated_bound(
        running: tuple[Stack, Sim], sim: Sim, http: httpx.Client, reply: int, stream: bool) -> None:
    """The issue's case: 8 concurrent requests without max_tokens against 20,000 used 40,008 tokens."""
    sim.configure(reply_tokens=reply, ttft_ms=1500)  # all eight are in flight at once
    key = new_key()
    body = {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": PROMPT}]}
    reservation = reserved(body, ALLOWANCE)

    def call(_: int) -> int:
        with httpx.Client(base_url=running[0].host_url, timeout=60) as client:
            response = post(client, CHAT, body, key)
            _ = response.content
            return response.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(call, range(8)))
    admitted = statuses.count(200)
    assert statuses.count(429) == 8 - admitted
    assert admitted == LIMIT // reservation  # every reservation that fits, and not one more
    used = admitted * (100 + reply)  # what the upstream generated for this caller (prompt 100 + reply)
    bound = LIMIT + admitted * max(0, reply - ALLOWANCE)
    assert used <= bound, f"{admitted} admitted used {used}, over the stated bound {bound}"
    if reply <= ALLOWANCE:
        assert used <= LIMIT  # replies within the allowance: no overshoot at all
    # The overshoot is charged: what the caller used is counted, so it waits until it has slid out.
    probe = post(http, CHAT, PROBE, key)
    if used + reserved(PROBE, 1) > LIMIT:
        assert probe.status_code == 429 and int(probe.headers["retry-after"]) >= 1
    else:
        assert LIMIT - int(probe.headers["x-caller-ratelimit-remaining-tokens"]) == used + reserved(PROBE, 1)


def test_a_background_response_needs_an_output_cap(sim: Sim, http: httpx.Client) -> None:
    response = post(http, RESPONSES, {"model": "gpt-4o-mini", "input": PROMPT, "background": True}, new_key())
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "max_output_tokens_required"
    assert sim.stats()["counts"].get("responses", 0) == 0


def test_a_background_response_keeps_its_reservation_until_seen_finished(sim: Sim, http: httpx.Client) -> None:
    sim.configure(reply_tokens=50)
    key = new_key()
    body = {"model": "gpt-4o-mini", "input": PROMPT, "background": True, "max_output_tokens": 500}
    created = post(http, RESPONSES, body, key)
    assert created.status_code == 200 and created.json()["status"] == "queued", created.text
    assert charged(http, key) == reserved(body, 500)  # no usage yet: the whole reservation stands
    finished = http.get(f"{RESPONSES}/{created.json()['id']}", headers={"x-functions-key": key})
    assert finished.status_code == 200 and finished.json()["status"] == "completed", finished.text
    assert charged(http, key) == 100 + 50  # settled to its real use
