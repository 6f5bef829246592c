"""Per-caller token limits: reserve, settle, sliding minute, retry-after, cross-instance sync."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import Headers

from shared import quota as quota_module
from shared.callers import identify, query_values
from shared.errors import GatewayError
from shared.gateway import _estimate_tokens, _Metering
from shared.quota import CallerQuota
from shared.usage import StreamMeter, Usage
from tests.fakes import FakeClock


class MemoryStore:
    """Stands in for Table storage: counts per (caller, minute, instance)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int, str], int] = {}

    async def write(self, caller: str, minute: int, instance: str, tokens: int) -> None:
        self.rows[(caller, minute, instance)] = tokens

    async def read_others(self, caller: str, minute: int, instance: str) -> int:
        return sum(t for (c, m, i), t in self.rows.items() if c == caller and m == minute and i != instance)


def test_reserve_until_the_limit_then_429_with_retry_after() -> None:
    clock = FakeClock(6000.0)  # the start of a minute
    quota = CallerQuota(1000, clock=clock)
    quota.reserve("a", 600)
    quota.reserve("a", 300)
    assert quota.remaining("a") == 100
    with pytest.raises(GatewayError) as info:
        quota.reserve("a", 200)
    error = info.value
    assert error.status == 429 and error.code == "caller_token_limit_exceeded"
    # 900 used now: the next minute starts in 60 s, then 900 fades until 900*(1-f)+200 <= 1000 (f >= 1/9)
    assert int(error.headers["retry-after"]) == 67
    assert error.headers["x-caller-ratelimit-remaining-tokens"] == "0"


def test_callers_are_independent() -> None:
    quota = CallerQuota(100, clock=FakeClock(0.0))
    quota.reserve("a", 100)
    quota.reserve("b", 100)
    with pytest.raises(GatewayError):
        quota.reserve("a", 1)


def test_settle_replaces_the_estimate_with_real_usage() -> None:
    quota = CallerQuota(1000, clock=FakeClock(0.0))
    reservation = quota.reserve("a", 800)
    quota.settle(reservation, 50)
    assert quota.remaining("a") == 950
    quota.settle(quota.reserve("a", 10), None)  # no usage reported: the estimate stands
    assert quota.remaining("a") == 940


def test_the_window_slides() -> None:
    clock = FakeClock(60.0 * 100)
    quota = CallerQuota(1000, clock=clock)
    quota.reserve("a", 1000)
    clock.now += 60 + 30  # half of last minute is still inside the window
    assert quota.remaining("a") == 500
    clock.now += 30
    assert quota.remaining("a") == 1000


def test_a_request_larger_than_the_limit_is_a_400() -> None:
    with pytest.raises(GatewayError) as info:
        CallerQuota(100, clock=FakeClock(0.0)).reserve("a", 101)
    assert info.value.status == 400


async def test_instances_share_counts_through_the_store() -> None:
    clock, store = FakeClock(120.0), MemoryStore()
    one = CallerQuota(1000, store=store, clock=clock, instance="one")
    two = CallerQuota(1000, store=store, clock=clock, instance="two")
    one.reserve("a", 800)
    await one.sync("a")
    await two.sync("a")
    assert two.remaining("a") == 200
    with pytest.raises(GatewayError):
        two.reserve("a", 300)


def test_caller_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    spoofed = {"x-ms-client-principal-id": "admin", "x-functions-key": "k1"}
    assert identify(spoofed).startswith("key:")  # principal headers are not trusted without Easy Auth
    assert "k1" not in identify(spoofed)
    assert identify({}, b"code=k1") == identify({"x-functions-key": "k1"})
    assert identify({}) == "anonymous"
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    assert identify(spoofed) == "principal:admin"
    assert identify({"x-functions-key": "k1"}) == identify({}, b"code=k1")  # no principal: the key, as before


def headers(*pairs: tuple[str, str]) -> Headers:
    """Headers as Starlette gives them: repeats kept, names lower-cased by the server (ASGI)."""
    return Headers(raw=[(name.lower().encode(), value.encode()) for name, value in pairs])


KEY = identify({"x-functions-key": "REALKEY"})


@pytest.mark.parametrize("query", [b"code=REALKEY", b"CODE=REALKEY", b"Code=REALKEY", b"%63ode=REALKEY",
                                   b"%43%4FDE=REALKEY", b"other=1&code=REALKEY&x", b"&&code=REALKEY&",
                                   b"code=REAL%4BEY", b"code=REALKEY&codex=other", b"cod=x&code=REALKEY"])
def test_the_code_parameter_is_read_like_the_functions_host(query: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """ASP.NET Core's query collection: names case-insensitive and percent-decoded, values decoded."""
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    assert identify(headers(), query) == KEY


def test_key_values_are_case_sensitive_and_plus_is_a_space(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    assert identify(headers(), b"code=realkey") != KEY  # the host compares keys ordinally
    assert identify(headers(), b"code=a+b") == identify(headers(("x-functions-key", "a b")))
    assert identify(headers(), b"code=a%2Bb") == identify(headers(("x-functions-key", "a+b")))


def test_the_header_wins_over_the_query_like_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    assert identify(headers(("x-functions-key", "REALKEY")), b"code=other") == KEY
    assert identify(headers(("X-Functions-Key", "REALKEY")), b"") == KEY


@pytest.mark.parametrize(("pairs", "query"), [
    ((), b"code=REALKEY&code=anything"),
    ((), b"code=REALKEY&CODE=anything"),
    ((), b"code=REALKEY&%63ode=anything"),
    ((), b"code=REALKEY&code=REALKEY"),
    ((), b"code="),
    ((), b"code"),
    ((("x-functions-key", "REALKEY"), ("x-functions-key", "anything")), b""),
    ((("x-functions-key", "REALKEY"), ("X-FUNCTIONS-KEY", "REALKEY")), b""),
    ((("x-functions-key", ""),), b"code=REALKEY"),
    ((("x-functions-key", "REALKEY"),), b"code=a&code=b"),
])
def test_ambiguous_keys_are_refused(pairs: tuple[tuple[str, str], ...], query: bytes,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    with pytest.raises(GatewayError) as info:
        identify(headers(*pairs), query)
    assert info.value.status == 401 and info.value.code == "ambiguous_function_key"
    assert "REALKEY" not in info.value.message


def test_easy_auth_principal_is_not_refused_for_key_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    assert identify(headers(("x-ms-client-principal-id", "p1")), b"code=a&code=b") == "principal:p1"


def test_query_values_parse_like_aspnet() -> None:
    assert query_values(b"a=1&CODE=x&b&code=y+z&c%6Fde=%7E", "CODE") == ["x", "y z", "~"]
    assert query_values("code=%E2%82%AC", "CODE") == ["\u20ac"]


def test_settle_charges_use_beyond_the_reservation_in_the_current_minute() -> None:
    clock = FakeClock(6000.0)
    quota = CallerQuota(10_000, clock=clock)
    reservation = quota.reserve("a", 1000)
    clock.now += 150  # a long stream: its reservation's minute has left the window
    quota.settle(reservation, 4000)
    assert quota.remaining("a") == 7000  # the 3000 beyond it count now, not in a minute already forgotten
    again = quota.reserve("b", 1000)
    quota.settle(again, 4000)
    quota.settle(again, 3000)  # settling again replaces the last value
    assert quota.remaining("b") == 7000


def test_a_held_background_reservation_is_settled_when_seen_finished() -> None:
    quota = CallerQuota(1000, clock=FakeClock(0.0))
    reservation = quota.reserve("a", 600)
    quota.settle(reservation, None)  # queued: no usage yet, the estimate stands
    quota.hold("resp_1", reservation)
    assert quota.remaining("a") == 400
    assert quota.settle_held("resp_1", 250)
    assert quota.remaining("a") == 750
    assert not quota.settle_held("resp_1", 999)  # once
    assert quota.remaining("a") == 750


def test_held_reservations_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quota_module, "MAX_HELD", 3)
    quota = CallerQuota(1000, clock=FakeClock(0.0))
    for i in range(5):
        quota.hold(f"resp_{i}", quota.reserve("a", 1))
    assert not quota.settle_held("resp_0", 0) and quota.settle_held("resp_4", 0)


class Body(BaseModel):
    model_config = ConfigDict(extra="allow")


def estimate(body: dict[str, object], allowance: int = 0, limit: int | None = None) -> tuple[int, int]:
    raw = json.dumps(body).encode()
    return _estimate_tokens(raw, Body.model_validate(body), allowance, limit)


def test_reservations_without_a_cap_include_the_output_allowance() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}]}
    prompt, output = estimate(body, allowance=4096, limit=100_000)
    assert prompt == -(-len(json.dumps(body)) // 4) and output == 4096
    assert estimate({**body, "max_tokens": 50}, allowance=4096, limit=100_000)[1] == 50
    assert estimate({**body, "max_tokens": 50, "max_completion_tokens": 70}, 4096, 100_000)[1] == 70
    assert estimate({**body, "max_tokens": 50, "n": 3}, 4096, 100_000)[1] == 150
    assert estimate({**body, "n": 2}, 4096, 100_000)[1] == 8192
    assert estimate({**body, "max_tokens": True}, 4096, 100_000)[1] == 4096  # not a number
    assert estimate(body, allowance=4096, limit=1000)[1] == 1000 - prompt  # clipped: an idle caller gets through
    assert estimate({**body, "max_tokens": 5000}, allowance=4096, limit=1000)[1] == 5000  # a cap is never clipped
    assert estimate({"input": "x"}, allowance=0, limit=1000)[1] == 0  # embeddings: no output


CHUNK = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
         b'"delta":{"content":%s},"logprobs":null,"finish_reason":null}]%s}\n\n')


def chat_stream(with_usage: bool) -> list[bytes]:
    """What an OpenAI-style upstream sends, with and without ``stream_options.include_usage``."""
    extra = b',"usage":null' if with_usage else b""
    events = [CHUNK % (b'"Hello"', extra), CHUNK % (b'" world, \\"usage\\":null"', extra),
              b'data: {"id":"c1","choices":[],"prompt_filter_results":[]}\n\n']
    if with_usage:
        events.append(b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":'
                      b'{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}\n\n')
    events.append(b"data: [DONE]\n\n")
    return events


@pytest.mark.parametrize("grouping", [1, 2, 5])
def test_the_usage_the_gateway_asked_for_is_taken_out_again(grouping: int) -> None:
    """The caller gets byte for byte the stream it would have got without include_usage."""
    sent = chat_stream(with_usage=True)
    chunks = [b"".join(sent[i:i + grouping]) for i in range(0, len(sent), grouping)]
    meter = StreamMeter("chat", strip_usage=True)
    relayed = b"".join(meter.feed(chunk) for chunk in chunks)
    assert relayed == b"".join(chat_stream(with_usage=False))
    assert meter.usage is not None and meter.usage.total_tokens == 10


def test_a_caller_that_asked_for_usage_gets_it() -> None:
    sent = chat_stream(with_usage=True)
    meter = StreamMeter("chat")
    assert b"".join(meter.feed(chunk) for chunk in sent) == b"".join(sent)
    assert meter.usage is not None and meter.usage.total_tokens == 10


def test_output_relayed_is_estimated_when_no_usage_comes() -> None:
    meter = StreamMeter("chat")
    for chunk in chat_stream(with_usage=False):
        meter.feed(chunk)
    assert meter.usage is None
    assert meter.output_tokens == 2 + 5  # "Hello" (5 chars) and the 22-character escaped second piece
    responses = StreamMeter("responses")
    responses.feed(b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"abcdefgh"}'
                   b'\n\nevent: response.output_text.done\ndata: {"type":"response.output_text.done",'
                   b'"text":"abcdefgh"}\n\n')
    assert responses.output_tokens == 2  # the .done event repeats the text and is not counted again


def test_a_missing_usage_is_never_cheaper_than_the_reservation() -> None:
    quota = CallerQuota(10_000, clock=FakeClock(0.0))
    cheap = _Metering(quota, quota.reserve("a", 1000), prompt=100, meter=StreamMeter("chat"))
    cheap.settle(None)
    assert quota.remaining("a") == 9000
    long = _Metering(quota, quota.reserve("b", 1000), prompt=100, meter=StreamMeter("chat"))
    assert long.meter is not None
    long.meter.output_tokens = 3000  # relayed more than the allowance, then cut
    long.settle(None)
    assert quota.remaining("b") == 10_000 - 3100
    refused = _Metering(quota, quota.reserve("c", 1000), prompt=100)
    refused.settle(None, generated=False)
    assert quota.remaining("c") == 10_000
    reported = _Metering(quota, quota.reserve("d", 1000), prompt=100)
    reported.settle(Usage(20, 5))
    reported.settle(Usage(900, 900))  # once
    assert quota.remaining("d") == 10_000 - 25
