"""HTTP functions served by a real ``python -m devhost`` process."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from devhost.stack import Stack
from tests.devhost.helpers import records, wait_for

pytestmark = pytest.mark.timeout(60)


def test_banner_lists_functions_like_core_tools(stack: Stack) -> None:
    assert stack.host_log is not None
    log = stack.host_log.read_text()
    base = stack.host_url
    assert f"Functions host listening on {base}" in log
    assert f"hello: [GET] {base}/svc/hello" in log
    assert f"echo: [ALL] {base}/svc/echo" in log
    assert f"boom: [GET,POST] {base}/svc/boom" in log
    assert "ok_worker: queueTrigger" in log


def test_route_prefix_from_host_json(stack: Stack, client: httpx.Client) -> None:
    assert client.get("/hello").status_code == 200
    assert httpx.get(f"{stack.host_url}/api/hello").status_code == 404
    # Routes match case-insensitively, as in ASP.NET routing.
    assert httpx.get(f"{stack.host_url}/SVC/Hello").status_code == 200


def test_methods_are_enforced_with_404_like_the_host(client: httpx.Client) -> None:
    assert client.post("/hello").status_code == 404
    assert client.get("/boom").status_code == 500  # GET and POST are allowed there
    assert client.put("/boom").status_code == 404


def test_function_without_methods_accepts_all(client: httpx.Client) -> None:
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        response = client.request(method, "/echo", content=b"payload" if method != "GET" else None)
        assert response.status_code == 200
        assert response.json()["method"] == method
    assert client.post("/echo", content=b"abc").json()["body"] == "abc"


def test_settings_file_fills_gaps_and_environment_wins(client: httpx.Client) -> None:
    body = client.get("/hello", params={"q": "1"}).json()
    assert body["greeting"] == "hello from settings"  # from local.settings.sample.json
    assert body["override"] == "from env"  # the Stack's env beats the settings file
    assert body["query"] == {"q": "1"}


def test_route_parameters_and_constraints(client: httpx.Client) -> None:
    by_id = client.get("/items/42").json()
    assert by_id == {"function": "item_by_id", "params": {"id": "42"}}  # route values are strings
    assert client.get("/items/latest").json()["function"] == "latest_item"  # literal beats {id:int}
    assert client.get("/items/abc").status_code == 404  # fails the int constraint
    assert client.get("/files/a/b/c.txt").json() == {"params": {"rest": "a/b/c.txt"}}


def test_streaming_response_streams_chunk_by_chunk(client: httpx.Client) -> None:
    started = time.monotonic()
    arrivals: list[float] = []
    with client.stream("GET", "/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_raw():
            if chunk:
                arrivals.append(time.monotonic() - started)
    total = arrivals[-1]
    # The handler sleeps 0.3 s after each of its 5 chunks: the first one must not wait for the rest.
    assert total >= 1.2
    assert arrivals[0] < 0.5
    assert len(arrivals) >= 4


def test_client_disconnect_closes_the_handler_stream(stack: Stack, client: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    with client.stream("GET", "/stream", params={"tag": tag, "chunks": "50"}) as response:
        next(response.iter_raw())  # one chunk, then hang up
    ended = wait_for(lambda: [r for r in records(stack, "stream") if r["tag"] == tag], timeout=5)
    assert ended[0]["completed"] is False
    assert ended[0]["sent"] < 10


def test_handler_exception_returns_500(client: httpx.Client) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.content == b""


def test_classic_http_request_and_response_are_adapted(client: httpx.Client) -> None:
    response = client.post("/classic/bob", content=b"xyz")
    assert response.status_code == 201
    assert response.text == "classic bob POST xyz"
    assert response.headers["x-sample"] == "yes"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_function_timeout_from_host_json(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.get("/slow")  # sleeps 30 s; functionTimeout is 3 s
    elapsed = time.monotonic() - started
    assert response.status_code == 500
    assert 2.5 < elapsed < 10


def test_admin_endpoints(stack: Stack) -> None:
    status = httpx.get(f"{stack.host_url}/admin/host/status").json()
    assert status["state"] == "Running"
    assert set(status["queues"]) >= {"ok_worker", "failing_worker"}
    functions = {f["name"]: f for f in httpx.get(f"{stack.host_url}/admin/functions").json()}
    assert functions["hello"]["authLevel"] == "function"  # kept, though not enforced locally
    assert functions["hello"]["url"] == f"{stack.host_url}/svc/hello"
    assert functions["ok_worker"]["queueName"] == "ok-jobs"
