"""The browser cannot be turned against the gateway's users (issue #10, finding 6, browser parts).

- DNS rebinding: a page on evil.test whose name is re-pointed at 127.0.0.1 is, to the browser, the
  same origin as the keyless local host. It sends ``Host: evil.test:PORT`` and
  ``Origin: http://evil.test:PORT``; the gateway must not take that for its own page.
- The sample page must not be a key-forwarder: its CSP lets it connect only to its own origin and
  the configured gateway origins (``UI_GATEWAY_ORIGINS``), and it is told only those.

Raw httpx requests, because a browser would never let a test forge ``Host`` and ``Origin``; the page
itself is driven in Chromium by tests/browser/test_page.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from devhost.stack import Stack
from tests.security.conftest import Sim, start_stack

OTHER_GATEWAY = "https://gw2.example.test"
APP_HOSTNAME = "gw.example.test"  # what the platform puts in WEBSITE_HOSTNAME in Azure
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # The local host itself refuses foreign Host names (tests/devhost/test_devhost_host_header.py); letting
    # these two through attacks the gateway's own check behind it, which is what stands when a name does arrive.
    hosts = {"DEVHOST_ALLOWED_HOSTS": "evil.test,other.test"}
    with start_stack({"UI_GATEWAY_ORIGINS": OTHER_GATEWAY, "WEBSITE_HOSTNAME": APP_HOSTNAME, **hosts}) as (running, _):
        yield running


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.host_url, timeout=30) as client:
        yield client


def port(stack: Stack) -> int:
    return int(stack.host_url.rsplit(":", 1)[1])


@pytest.mark.parametrize("method", ["POST", "OPTIONS"])
def test_dns_rebinding_is_not_taken_for_the_same_origin(stack: Stack, http: httpx.Client, method: str) -> None:
    rebound = f"evil.test:{port(stack)}"
    headers = {"host": rebound, "origin": f"http://{rebound}", "access-control-request-method": "POST",
               "access-control-request-headers": "content-type"}
    answer = http.request(method, "/api/v1/chat/completions", headers=headers, json=CHAT)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_the_local_page_calling_its_own_host_still_works(stack: Stack, http: httpx.Client, name: str) -> None:
    own = f"{name}:{port(stack)}"
    answer = http.post("/api/v1/chat/completions", headers={"host": own, "origin": f"http://{own}"}, json=CHAT)
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == f"http://{own}"


def test_the_apps_own_azure_hostname_is_its_own_origin(http: httpx.Client) -> None:
    answer = http.post("/api/v1/chat/completions", headers={"host": APP_HOSTNAME, "origin": f"https://{APP_HOSTNAME}"},
                       json=CHAT)
    assert answer.status_code == 200, answer.text
    spoofed = http.post("/api/v1/chat/completions", headers={"host": "other.test", "origin": "https://other.test"},
                        json=CHAT)
    assert spoofed.status_code == 403


def _connect_src(csp: str) -> list[str]:
    directive = next(d.strip() for d in csp.split(";") if d.strip().startswith("connect-src"))
    return directive.split()[1:]


def test_the_page_may_connect_only_to_itself_and_configured_gateways(http: httpx.Client) -> None:
    page = http.get("/api/ui/")
    assert page.status_code == 200
    assert _connect_src(page.headers["content-security-policy"]) == ["'self'", OTHER_GATEWAY]
    script = http.get("/api/ui/app.js")
    assert _connect_src(script.headers["content-security-policy"]) == ["'self'", OTHER_GATEWAY]


def test_the_page_is_told_only_the_configured_gateways(http: httpx.Client) -> None:
    page = http.get("/api/ui/").text
    listed = re.search(r'<meta name="gateway-origins" content="([^"]*)"', page)
    assert listed is not None, "the page must carry the gateway origins it may use"
    assert listed.group(1).split() == [OTHER_GATEWAY]
    # Cached copies stay correct: the ETag covers what was served, not the file on disk.
    again = http.get("/api/ui/", headers={"if-none-match": http.get("/api/ui/").headers["etag"]})
    assert again.status_code == 304


def test_a_configured_value_that_is_not_a_plain_origin_is_refused_not_half_used() -> None:
    """A quote, a semicolon or a path in the setting must never add CSP directives or HTML."""
    hostile = "https://ok.example.test, https://x.test;script-src *, https://y.test\"><script>"
    with start_stack({"UI_GATEWAY_ORIGINS": hostile}) as (running, _):
        page = httpx.get(f"{running.host_url}/api/ui/", timeout=30)
    assert page.status_code == 500
    assert "UI_GATEWAY_ORIGINS" in page.text
    assert "script-src *" not in page.headers["content-security-policy"]
    assert "<script>" not in page.text


__all__ = ["Sim"]
