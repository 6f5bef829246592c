"""Caller identity through the running local host: one caller per key, read as the Functions host reads it.

The local host, like Core Tools, does not validate function keys, but the gateway still names the
caller from them, so what is asserted here is *which budget* a request spends (the per-caller
``x-caller-ratelimit-remaining-tokens`` header) and *who the log line names*. In Azure the host
validates the first key value it finds (header first, then ``code``, names case-insensitive): an
attacker who holds one real key must not be counted under any other name, and requests the host and
the gateway could read differently are refused with 401 before any upstream call.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from devhost.stack import Stack
from shared.callers import identify
from tests.security.conftest import Sim, start_stack

LIMIT = 1_000_000
CHAT = "/api/v1/chat/completions"
BODY = json.dumps({"model": "gpt-4o-mini", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}).encode()
RESERVED = -(-len(BODY) // 4) + 1  # what one such request reserves: prompt estimate + max_tokens


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[Stack, Sim]]:
    with start_stack({"CALLER_TOKENS_PER_MINUTE": str(LIMIT)}) as started:
        yield started


@pytest.fixture
def http(running: tuple[Stack, Sim]) -> Iterator[httpx.Client]:
    stack, sim = running
    sim.reset()
    with httpx.Client(base_url=stack.host_url, timeout=30) as client:
        yield client


def post(http: httpx.Client, query: str = "", headers: list[tuple[str, str]] | None = None) -> httpx.Response:
    return http.post(CHAT + (f"?{query}" if query else ""), content=BODY,
                     headers=[("content-type", "application/json"), *(headers or [])])


def spent(response: httpx.Response) -> int:
    """Tokens of its caller's budget in use when this request was admitted, its own reservation included."""
    assert response.status_code == 200, response.text
    return LIMIT - int(response.headers["x-caller-ratelimit-remaining-tokens"])


def new_key() -> str:
    return "key-" + uuid.uuid4().hex


def settled_use(http: httpx.Client, key: str) -> int:
    """What the key's budget holds once its earlier requests settled (a probe, minus the probe)."""
    return spent(post(http, headers=[("x-functions-key", key)])) - RESERVED


@pytest.mark.parametrize("spelling", ["code={k}", "CODE={k}", "Code={k}", "%63ode={k}", "%43%4F%44%45={k}",
                                      "code=%s"])
def test_every_spelling_of_one_key_is_one_caller(http: httpx.Client, spelling: str) -> None:
    key = new_key()
    query = spelling.format(k=key) if "{k}" in spelling else spelling % "".join(f"%{b:02X}" for b in key.encode())
    first = post(http, query)
    assert spent(first) == RESERVED  # a fresh budget
    assert settled_use(http, key) > 0  # the header-keyed probe spends the same budget


@pytest.mark.parametrize(("spelling", "param"), [("x=1&code={k}&y", "x"), ("code={k}&codes=other", "codes")])
def test_a_key_among_parameters_the_route_does_not_take_is_refused_not_charged(
        running: tuple[Stack, Sim], http: httpx.Client, spelling: str, param: str) -> None:
    # The host reads the key among any other parameters; the gateway refuses names its routes do not
    # take (a POST route takes none), so such a request spends nothing and reaches no upstream.
    _, sim = running
    key = new_key()
    response = post(http, spelling.format(k=key))
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("unknown_parameter", param)
    assert sim.stats()["counts"].get("chat/completions", 0) == 0
    assert spent(post(http, f"code={key}")) == RESERVED  # nothing was counted under the key


def test_the_header_wins_over_code_like_the_host(http: httpx.Client) -> None:
    real, other = new_key(), new_key()
    assert spent(post(http, f"code={other}", [("x-functions-key", real)])) == RESERVED
    assert settled_use(http, real) > 0  # counted under the header's key, which the host validated
    assert spent(post(http, f"code={other}")) == RESERVED  # and never under the query's
    assert spent(post(http, "", [("X-FUNCTIONS-KEY", real)])) > RESERVED  # header names in any case


@pytest.mark.parametrize(("query", "headers"), [
    ("code={real}&code=anything", []),  # the attack: the host validates the first, Starlette took the last
    ("code={real}&CODE=anything", []),
    ("CODE={real}&code=anything", []),
    ("code={real}&%63ode=anything", []),
    ("code={real}&code={real}", []),
    ("code=", []),
    ("code", []),
    ("", [("x-functions-key", "{real}"), ("x-functions-key", "anything")]),
    ("", [("x-functions-key", "{real}"), ("X-Functions-Key", "{real}")]),
    ("code={real}", [("x-functions-key", "")]),
    ("code={real}&code=x", [("x-functions-key", "{real}")]),
])
def test_ambiguous_keys_are_refused_before_the_upstream(running: tuple[Stack, Sim], http: httpx.Client, query: str,
                                                        headers: list[tuple[str, str]]) -> None:
    _, sim = running
    real = new_key()
    response = post(http, query.format(real=real), [(n, v.format(real=real)) for n, v in headers])
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "ambiguous_function_key" and error["type"] == "authentication_error"
    assert real not in response.text
    assert sim.stats()["counts"].get("chat/completions", 0) == 0  # refused before any upstream call
    assert spent(post(http, f"code={real}")) == RESERVED  # and nothing was counted under the real key


def test_no_key_is_one_anonymous_caller_locally(http: httpx.Client) -> None:
    """Locally keys are not required; in Azure the host answers 401 to a keyless /api/v1 call first."""
    assert spent(post(http)) >= RESERVED
    assert spent(post(http)) > RESERVED


def test_the_log_line_names_the_caller_by_digest_never_by_key(running: tuple[Stack, Sim], http: httpx.Client) -> None:
    stack, _ = running
    real = new_key()
    response = post(http, f"CODE={real}", [("x-other", "1")])
    request_id = response.headers["x-request-id"]
    assert stack.host_log is not None
    deadline, line = time.monotonic() + 5, ""
    while time.monotonic() < deadline and not line:
        line = next((entry for entry in stack.host_log.read_text(errors="replace").splitlines()
                     if request_id in entry and '"event":"request"' in entry), "")
        time.sleep(0.05)
    assert line, "no request log line"
    assert f'"caller":"{identify({"x-functions-key": real})}"' in line
    assert real not in stack.host_log.read_text(errors="replace")
