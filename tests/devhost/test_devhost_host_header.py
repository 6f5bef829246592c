"""The local host answers only requests addressed to it by one of its own names (DNS rebinding).

A page on ``evil.test`` that re-points its DNS name at 127.0.0.1 is, to the browser, the same origin
as the keyless local host: its GETs carry no ``Origin`` (so CORS never runs) and the browser lets the
page read the answers. What gives it away is ``Host: evil.test:PORT``, so the local host refuses every
request whose Host is not one of its names, before routing: nothing of the app runs, nothing reaches
the upstream.

Raw sockets, because no HTTP client (and no browser) lets a test send two Host headers, userinfo or
an absolute-form target; the stack is the real one (host + simulator + Azurite as processes).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devhost.host_check import HostCheck, HostSettingError, absolute_form_authority, own_hostnames
from devhost.stack import Stack
from shared.lazy import forget_process_state
from tests.security.conftest import Sim, start_stack

APP_HOSTNAME = "gw.example.test"  # what the platform puts in WEBSITE_HOSTNAME in Azure
EXTRA_HOSTNAME = "gateway.lan.test"  # a name given to the local host with DEVHOST_ALLOWED_HOSTS
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()

pytestmark = pytest.mark.timeout(120)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        payload = json.loads(self.body)
        assert isinstance(payload, dict)
        error = payload["error"]
        assert isinstance(error, dict)
        return error


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[Stack, Sim]]:
    with start_stack({"WEBSITE_HOSTNAME": APP_HOSTNAME, "DEVHOST_ALLOWED_HOSTS": EXTRA_HOSTNAME}) as running:
        yield running


@pytest.fixture
def port(gateway: tuple[Stack, Sim]) -> int:
    return int(gateway[0].host_url.rsplit(":", 1)[1])


@pytest.fixture
def sim(gateway: tuple[Stack, Sim]) -> Sim:
    gateway[1].reset()
    return gateway[1]


def send(port: int, head: str, body: bytes = b"") -> Answer:
    """One request written byte for byte (``head`` is the request line and header lines), one answer read."""
    raw = head.replace("\n", "\r\n").encode() + b"connection: close\r\n"
    if body:
        raw += b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(raw + b"\r\n" + body)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head_bytes, _, rest = received.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return Answer(int(status_line.split()[1]), headers, rest)


def get(port: int, host_lines: str, path: str = "/api/health") -> Answer:
    return send(port, f"GET {path} HTTP/1.1\n{host_lines}")


def assert_refused(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers.get("x-request-id")
    error = answer.error()
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    assert "DEVHOST_ALLOWED_HOSTS" in error["message"] or status == 400


# --- the attack: a rebound name ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["evil.test", "localhost.evil.test", "127.0.0.1.nip.io", "evil.test."])
def test_a_rebound_page_cannot_read_the_model_list(port: int, sim: Sim, name: str) -> None:
    answer = get(port, f"host: {name}:{port}\n", "/api/v1/models")
    assert_refused(answer, 421, "misdirected_request")
    assert b"gpt-4o-mini" not in answer.body


def test_a_rebound_page_cannot_call_the_upstream(port: int, sim: Sim) -> None:
    answer = send(port, f"POST /api/v1/chat/completions HTTP/1.1\nhost: evil.test:{port}\n", CHAT)
    assert_refused(answer, 421, "misdirected_request")
    assert sim.stats()["total"] == 0
    # The same request under the host's own name does reach the upstream: the count above can move.
    assert send(port, f"POST /api/v1/chat/completions HTTP/1.1\nhost: localhost:{port}\n", CHAT).status == 200
    assert sim.stats()["total"] == 1


def test_the_host_s_own_endpoints_are_refused_too(port: int) -> None:
    assert_refused(get(port, f"host: evil.test:{port}\n", "/admin/functions"), 421, "misdirected_request")


def test_an_absolute_form_target_names_the_host_not_the_host_header(port: int) -> None:
    """RFC 9112 section 3.2.2: with an absolute-form target the server uses its authority and ignores Host."""
    rebound = send(port, f"GET http://evil.test:{port}/api/health HTTP/1.1\nhost: localhost:{port}\n")
    assert_refused(rebound, 421, "misdirected_request")
    own = send(port, f"GET http://localhost:{port}/api/health HTTP/1.1\nhost: evil.test:{port}\n")
    assert own.status == 200, own


# --- the host's own names are served ---------------------------------------------------------------

@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "localhost", "127.0.0.1",
                                  "LOCALHOST:{port}", "localhost.:{port}", "Localhost.", f"{APP_HOSTNAME}",
                                  f"{APP_HOSTNAME.upper()}:443", f"{EXTRA_HOSTNAME}:{{port}}"])
def test_the_host_s_own_names_are_served(port: int, host: str) -> None:
    answer = get(port, f"host: {host.format(port=port)}\n")
    assert answer.status == 200, answer


# --- Host headers that cannot be read as one name ---------------------------------------------------

@pytest.mark.parametrize("host_lines", [
    "",                                                   # none at all (HTTP/1.1 requires one)
    "host: localhost:{port}\nhost: localhost:{port}\n",   # two, even equal (RFC 9112 section 3.2)
    "host: localhost:{port}\nhost: evil.test:{port}\n",
    "host: evil.test:{port}\nhost: localhost:{port}\n",
    "host: \n",                                           # empty
    "host: user@localhost:{port}\n",                      # userinfo
    "host: localhost:{port}@evil.test\n",
    "host: %6cocalhost:{port}\n",                         # percent-encoding
    "host: localhost:\n",                                 # empty port
    "host: localhost:99999\n",                            # no such port
    "host: localhost:{port}/x\n",
    "host: [::1\n",
    "host: local host\n",
])
def test_a_host_header_that_is_not_one_name_is_a_bad_request(port: int, sim: Sim, host_lines: str) -> None:
    answer = get(port, host_lines.format(port=port))
    assert_refused(answer, 400, "invalid_host_header")
    assert sim.stats()["total"] == 0


def test_http_1_0_without_host_is_refused(port: int) -> None:
    """A browser always sends Host; without one there is no name to judge the request by."""
    assert_refused(send(port, "GET /api/health HTTP/1.0\n"), 400, "invalid_host_header")


def test_a_name_with_two_trailing_dots_is_not_ours(port: int) -> None:
    assert_refused(get(port, f"host: localhost..:{port}\n"), 421, "misdirected_request")


# --- the rules in isolation (small units: the h11 fallback and the settings) --------------------------

NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


async def _through_check(scope_extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages a HostCheck sends for one request; the app behind it answers 204."""
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "headers": [], **scope_extra}
    await HostCheck(app, NAMES)(scope, receive, send)
    return sent


async def test_the_h11_fallback_judges_an_absolute_form_target_by_its_authority() -> None:
    """uvicorn's h11 protocol keeps the whole target in raw_path; the Host header must not win over it."""
    rebound = await _through_check({"raw_path": b"http://evil.test:7071/api/health",
                                    "headers": [(b"host", b"localhost:7071")]})
    assert rebound[0]["status"] == 421
    own = await _through_check({"raw_path": b"http://localhost:7071/api/health", "headers": [(b"host", b"evil.test")]})
    assert own[0]["status"] == 204
    broken = await _through_check({"raw_path": b"http://[::1/api/health", "headers": [(b"host", b"localhost")]})
    assert broken[0]["status"] == 400


@pytest.mark.parametrize(("target", "authority"), [
    (b"/api/health", None), (b"*", None), (b"http://a.test:1/x?y", b"a.test:1"), (b"HTTPS://a.test", b"a.test"),
    (b"http://u@a.test/", b"u@a.test"), (b"http:///x", b""), (b"ftp://a.test/", None),
])
def test_absolute_form_authority(target: bytes, authority: bytes | None) -> None:
    assert absolute_form_authority(target) == authority


def test_own_names_are_loopback_the_platform_name_the_bound_address_and_the_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_HOSTNAME", "GW.azurewebsites.net")
    forget_process_state()  # WEBSITE_HOSTNAME is read once per process
    try:
        names = own_hostnames("192.168.1.20", {"DEVHOST_ALLOWED_HOSTS": " Gateway.LAN., [::2], api_1 ,"})
    finally:
        monkeypatch.delenv("WEBSITE_HOSTNAME")
        forget_process_state()
    assert names == {"localhost", "127.0.0.1", "::1", "gw.azurewebsites.net", "192.168.1.20", "gateway.lan", "::2",
                     "api_1"}
    assert own_hostnames("0.0.0.0", {}) >= {"localhost"} and "0.0.0.0" not in own_hostnames("0.0.0.0", {})
    assert "::" not in own_hostnames("::", {})


@pytest.mark.parametrize("entry", ["evil.test:7071", "http://evil.test", "evil.test/x", "[::1", "a b", "é.test"])
def test_a_setting_entry_that_is_not_a_name_stops_the_host(entry: str) -> None:
    with pytest.raises(HostSettingError, match="DEVHOST_ALLOWED_HOSTS"):
        own_hostnames("127.0.0.1", {"DEVHOST_ALLOWED_HOSTS": f"localhost,{entry}"})
