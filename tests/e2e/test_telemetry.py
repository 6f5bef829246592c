"""Telemetry: a span per request and per upstream attempt with the attributes operators need.

The gateway runs in-process here (same handlers, Starlette app, real simulator upstream) so that an
in-memory exporter can see the spans; in Azure the exporter is Application Insights.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared import telemetry
from shared.lazy import forget_process_state
from tests.app_functions import app_functions
from tests.e2e.conftest import Sim


def _reset_process_state() -> None:
    forget_process_state()


@pytest.fixture
def spans(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{sim.http.base_url}/openai/v1")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "local")
    monkeypatch.setenv("OPENAI_MODELS", "gpt-4o-mini")
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    _reset_process_state()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    test_tracer = provider.get_tracer("test")
    monkeypatch.setattr(telemetry, "tracer", lambda: test_tracer)
    yield exporter
    _reset_process_state()


@pytest.fixture
def gateway() -> httpx.AsyncClient:
    handlers = {name: fn.get_user_function() for name, fn in app_functions().items()}

    def endpoint(name: str):  # type: ignore[no-untyped-def]
        async def call(request: Request) -> Response:
            return await handlers[name](request)  # type: ignore[no-any-return]
        return call

    app = Starlette(routes=[Route("/api/v1/chat/completions", endpoint("chat_completions"), methods=["POST"])])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")


async def test_request_and_attempt_spans_carry_model_backend_retries_and_tokens(
        spans: InMemorySpanExporter, gateway: httpx.AsyncClient, sim: Sim) -> None:
    sim.fault(path="chat/completions", kind="status", status=503, count=1)
    response = await gateway.post("/api/v1/chat/completions",
                                  json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    finished = spans.get_finished_spans()
    request = next(s for s in finished if s.name == "POST v1/chat/completions")
    attempts = [s for s in finished if s.name == "upstream attempt"]
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 200]
    assert all(a.parent is not None and a.parent.span_id == request.context.span_id for a in attempts)
    attrs = request.attributes
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gateway.backend"] == "default"
    assert attrs["gateway.retries"] == 1
    assert attrs["http.response.status_code"] == 200
    assert attrs["gen_ai.usage.total_tokens"] == response.json()["usage"]["total_tokens"]
    assert attrs["gateway.overhead_ms"] >= 0
    assert attrs["gateway.request_id"] == response.headers["x-request-id"]


async def test_stream_span_ends_with_time_to_first_token_and_usage(
        spans: InMemorySpanExporter, gateway: httpx.AsyncClient) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}}
    async with gateway.stream("POST", "/api/v1/chat/completions", json=body) as response:
        text = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert text.rstrip().endswith(b"data: [DONE]")
    [request] = [s for s in spans.get_finished_spans() if s.name == "POST v1/chat/completions"]
    assert request.attributes["gateway.time_to_first_token_ms"] > 0
    assert request.attributes["gen_ai.usage.output_tokens"] > 0


def test_without_a_connection_string_telemetry_stays_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    forget_process_state()
    assert telemetry.tracer() is None
    assert telemetry.start_request("r", "GET") is None
