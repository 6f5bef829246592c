"""The sample page in headless Chromium against the local host + simulator (issue 7).

Each test runs one scenario of ``driver.mjs`` in a fresh browser and asserts on what the page showed
(intermediate DOM states, not only the end result) and on what the simulator saw upstream.
Screenshots: test-artifacts/browser/<test name>-<step>.png.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from devhost.ports import LOCALHOST, free_ports
from tests.browser.conftest import Drive, Origins
from tests.e2e.conftest import Sim

STREAM = {"ttft_ms": 100, "token_delay_ms": 50, "reply_tokens": 14}
THROTTLED = "gpt-4.1-mini"


def _turn(samples: list[dict[str, Any]], turn: int) -> list[dict[str, Any]]:
    return [s for s in samples if s["turn"] == turn]


def _assert_grew_incrementally(samples: list[dict[str, Any]], final: str, at_least: int = 5) -> None:
    """The reply was on screen in several growing states before it was complete."""
    streaming = [s for s in samples if s["state"] == "streaming" and s["text"]]
    texts = [s["text"] for s in streaming]
    assert len(texts) >= at_least, f"only {len(texts)} intermediate states: {texts}"
    for shorter, longer in itertools.pairwise(texts):
        assert longer.startswith(shorter) and len(longer) > len(shorter)
    assert final.startswith(texts[-1])
    assert len(texts[0]) < len(final), "the first state seen was already the whole reply"
    spread_ms = streaming[-1]["t"] - streaming[0]["t"]
    assert spread_ms >= (at_least - 1) * STREAM["token_delay_ms"] * 0.5, f"states came {spread_ms:.0f} ms apart"


def test_chat_completions_stream_tokens_as_they_arrive_and_keep_history(drive: Drive, sim: Sim, page_url: str) -> None:
    sim.configure(**STREAM)
    seen = drive("chat", url=page_url, api="chat", prompts=["hello from the browser", "tell me more please"])
    assert seen["pageErrors"] == []
    first, second = seen["replies"]
    assert first.startswith("Simulated reply to: hello from the browser")
    assert second.startswith("Simulated reply to: tell me more please")
    _assert_grew_incrementally(_turn(seen["samples"], 1), first)
    _assert_grew_incrementally(_turn(seen["samples"], 2), second)
    assert "Done in" in seen["statuses"][0] and "first token after" in seen["statuses"][0]
    # The whole conversation goes with the second turn.
    history = seen["bodies"][1]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[1]["content"] == first
    assert all(body["stream"] is True for body in seen["bodies"])
    assert [r["stream"] for r in sim.requests("chat/completions")] == [True, True]


def test_responses_api_streams_too(drive: Drive, sim: Sim, page_url: str) -> None:
    sim.configure(**STREAM)
    seen = drive("chat", url=page_url, api="responses", prompts=["a responses question", "and another one"])
    assert seen["pageErrors"] == []
    first, second = seen["replies"]
    assert first.startswith("Simulated reply to: a responses question")
    _assert_grew_incrementally(_turn(seen["samples"], 1), first)
    _assert_grew_incrementally(_turn(seen["samples"], 2), second)
    inputs = seen["bodies"][1]["input"]
    assert [m["role"] for m in inputs] == ["user", "assistant", "user"]
    assert seen["bodies"][1]["store"] is False
    assert len(sim.requests("responses")) == 2


def test_stop_aborts_mid_stream_and_the_gateway_cancels_upstream(drive: Drive, sim: Sim, page_url: str) -> None:
    sim.configure(ttft_ms=50, token_delay_ms=150, reply_tokens=80)
    seen = drive("stop", url=page_url, prompt="a long story please", settleMs=700)
    assert seen["pageErrors"] == []
    assert seen["atStop"]["state"] == "stopped"
    # Nothing more arrived after Stop, and the reply was far from complete.
    assert seen["later"]["text"] == seen["atStop"]["text"]
    assert seen["atStop"]["text"].startswith(seen["beforeStop"]["text"])
    assert 4 <= len(seen["atStop"]["text"].split()) < 60
    assert "Stopped" in seen["status"]
    assert seen["sendEnabled"] and not seen["stopEnabled"]
    deadline = time.monotonic() + 5
    record = sim.requests("chat/completions")[-1]
    while not record["cancelled"] and time.monotonic() < deadline:
        time.sleep(0.1)
        record = sim.requests("chat/completions")[-1]
    assert record["cancelled"], "the upstream request must be cancelled when the user presses Stop"
    assert record["chunks_sent"] < 60


def test_disallowed_model_is_explained_in_plain_words(drive: Drive, sim: Sim, page_url: str) -> None:
    seen = drive("chatError", url=page_url, model="gpt-5-secret", prompt="hello")
    assert seen["kind"] == "404"
    assert "Not allowed" in seen["error"] and '"gpt-5-secret" is not available' in seen["error"]
    assert "gpt-4o-mini" in seen["error"]  # tells the user what they can pick instead
    assert seen["prompt"] == "hello" and seen["messages"] == 0 and seen["sendEnabled"]
    assert sim.stats()["total"] == 0  # refused by the gateway, never sent upstream


def test_rate_limit_says_when_to_retry(drive: Drive, sim: Sim, page_url: str) -> None:
    # Its own deployment: the gateway then skips gpt-4.1-mini for the 3 s it was asked to wait,
    # which must not spill over into the other tests (they use gpt-4o-mini).
    sim.fault(kind="status", status=429, retry_after_ms=3000, path="chat/completions", model=THROTTLED, count=0)
    seen = drive("chatError", url=page_url, model=THROTTLED, prompt="hello")
    assert seen["kind"] == "429"
    assert "Rate limited" in seen["error"] and "Retry in 3 s" in seen["error"]


def test_upstream_down_is_explained(drive: Drive, sim: Sim, page_url: str) -> None:
    sim.fault(kind="status", status=503, path="chat/completions", count=0)
    seen = drive("chatError", url=page_url, prompt="hello", tag="503")
    assert seen["kind"] == "503"
    assert "Upstream down" in seen["error"]

    sim.reset()
    sim.fault(kind="reset", path="chat/completions", count=0)
    seen = drive("chatError", url=page_url, prompt="hello", tag="unreachable")
    assert seen["kind"] == "502"
    assert "Upstream down" in seen["error"]


def test_failure_mid_stream_keeps_the_partial_reply_and_says_it_was_cut_off(drive: Drive, sim: Sim,
                                                                             page_url: str) -> None:
    sim.configure(token_delay_ms=20)
    sim.fault(kind="drop_mid_stream", after_chunks=4, path="chat/completions")
    seen = drive("chatError", url=page_url, prompt="hello")
    assert seen["kind"] == "stream"
    assert "The answer was cut off" in seen["error"] and "Upstream down" in seen["error"]
    assert seen["messages"] == 2  # the question and the partial answer stay on screen


def test_embedding_job_progress_reaches_100_and_results_download(drive: Drive, sim: Sim, page_url: str) -> None:
    lines = [f"line number {i} to embed" for i in range(60)]
    seen = drive("job", url=page_url, lines=lines)
    assert seen["pageErrors"] == []
    assert seen["counted"] == "60 inputs"
    assert seen["status"] == "succeeded", seen["samples"]
    values = [s["value"] for s in seen["samples"] if s["visible"]]
    assert values == sorted(values), "progress never goes back"
    assert values[-1] == 100 and seen["samples"][-1]["percent"] == "100%"
    assert seen["samples"][-1]["counts"].startswith("60 of 60 embedded")
    assert seen["rows"] == 60 and seen["filename"] == f"{seen['jobId']}.jsonl"
    assert isinstance(seen["firstRow"], dict)
    assert sim.stats()["counts"].get("embeddings", 0) >= 1


def test_cross_origin_page_works_when_its_origin_is_allowed(drive: Drive, sim: Sim, origins: Origins,
                                                           gateway: str) -> None:
    sim.configure(**STREAM)
    seen = drive("crossOrigin", url=origins.allowed.page(gateway), prompt="hi from another origin")
    assert seen["origin"] == origins.allowed.origin
    assert seen["models"] == "loaded" and seen["banner"] == ""
    assert "gpt-4o-mini" in seen["modelOptions"]
    assert seen["reply"].startswith("Simulated reply to: hi from another origin")
    _assert_grew_incrementally(seen["samples"], seen["reply"])


def test_cross_origin_page_is_refused_with_a_plain_error(drive: Drive, sim: Sim, origins: Origins, gateway: str,
                                                        http: httpx.Client) -> None:
    seen = drive("crossOrigin", url=origins.refused.page(gateway))
    assert seen["models"] == "error"
    assert "Not allowed" in seen["banner"] and origins.refused.origin in seen["banner"]
    assert "CORS_ALLOWED_ORIGINS" in seen["banner"]
    # It is the gateway that refuses (403, no CORS headers), not a server that is down.
    refused = http.get("/api/v1/models", headers={"origin": origins.refused.origin})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in refused.headers


class _Recorder(BaseHTTPRequestHandler):
    """A gateway someone else runs: answers everything (CORS included) and keeps what it was sent."""

    hits: ClassVar[list[tuple[str, str, str | None]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        self.hits.append((self.command, self.path, self.headers.get("x-functions-key")))
        body = b'{"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]}'
        self.send_response(200)
        for name, value in (("access-control-allow-origin", "*"), ("access-control-allow-headers", "*"),
                            ("access-control-allow-methods", "*"), ("content-type", "application/json"),
                            ("content-length", str(len(body)))):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_OPTIONS = _answer


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[str]:
    """The origin of a gateway the page must never talk to unless its host listed it."""
    server = ThreadingHTTPServer((LOCALHOST, free_ports(1)[0]), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{LOCALHOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("hosted", ["function app", "static copy"])
def test_a_crafted_link_cannot_send_the_key_or_prompts_elsewhere(drive: Drive, sim: Sim, page_url: str,
                                                                 origins: Origins, gateway: str, elsewhere: str,
                                                                 hosted: str) -> None:
    sim.configure(**STREAM)
    _Recorder.hits.clear()
    link = f"{elsewhere}/api"
    url = f"{page_url}?gateway={link}" if hosted == "function app" else origins.allowed.page(link)
    seen = drive("craftedLink", url=url, key="pasted-secret-key", prompt="my private question", typed=link,
                 tag=hosted.replace(" ", "-"))
    assert _Recorder.hits == [], "the page sent requests to a gateway its host never listed"
    assert not [r for r in seen["requested"] if r["url"].startswith(elsewhere)]
    assert seen["gatewayField"] == gateway, "the page kept to the gateway it may use"
    assert seen["bannerKind"] == "gateway" and "Ignored the gateway in this link" in seen["banner"]
    assert seen["reply"].startswith("Simulated reply to: my private question")
    assert "Not allowed: this page only talks to" in seen["typedBanner"]
    assert seen["saved"] != link
    # The key did go where it belongs.
    assert any(r["key"] == "pasted-secret-key" and r["url"].startswith(gateway) for r in seen["requested"])
