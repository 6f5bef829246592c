"""CORS decisions: exact origins only, plus the app's own origin."""

import pytest

from shared import cors

ALLOWED = frozenset({"https://app.example.com"})


def test_exact_origin_only() -> None:
    assert cors.origin_allowed("https://app.example.com", ALLOWED, "gw.example.net")
    assert not cors.origin_allowed("https://app.example.com.evil.test", ALLOWED, "gw.example.net")
    assert not cors.origin_allowed("http://app.example.com", ALLOWED, "gw.example.net")
    assert not cors.origin_allowed("null", ALLOWED, "gw.example.net")


def test_same_origin_page_is_allowed() -> None:
    assert cors.origin_allowed("http://localhost:7071", ALLOWED, "localhost:7071")
    assert not cors.origin_allowed("http://localhost:7072", ALLOWED, "localhost:7071")


def test_preflight_echoes_requested_headers_for_allowed_origin() -> None:
    headers = cors.preflight_headers("https://app.example.com", ("POST", "OPTIONS"),
                                     {"access-control-request-headers": "content-type, x-stainless-os"})
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert headers["access-control-allow-headers"] == "content-type, x-stainless-os"
    assert "x-request-id" in headers["access-control-expose-headers"]


def test_dns_rebinding_is_not_the_same_origin() -> None:
    """evil.test re-pointed at 127.0.0.1: Host and Origin agree, but the name is not ours."""
    assert not cors.origin_allowed("http://evil.test:7071", ALLOWED, "evil.test:7071")
    assert not cors.origin_allowed("http://evil.test:7071", ALLOWED, "evil.test:7071", app_hosts=frozenset())
    assert not cors.origin_allowed("http://127.0.0.1.evil.test:7071", ALLOWED, "127.0.0.1.evil.test:7071")


def test_loopback_names_and_the_apps_own_hostname_are_same_origin() -> None:
    for name in ("localhost", "127.0.0.1", "[::1]", "LOCALHOST"):
        assert cors.origin_allowed(f"http://{name}:7071", ALLOWED, f"{name}:7071", app_hosts=frozenset())
    app = frozenset({"gw.azurewebsites.net"})
    assert cors.origin_allowed("https://gw.azurewebsites.net", ALLOWED, "gw.azurewebsites.net", app_hosts=app)
    assert not cors.origin_allowed("https://other.azurewebsites.net", ALLOWED, "other.azurewebsites.net",
                                   app_hosts=app)
    # The Origin must still be the Host: the local page on one port is not another port's.
    assert not cors.origin_allowed("http://localhost:7072", ALLOWED, "localhost:7071", app_hosts=app)
    assert not cors.origin_allowed("ftp://localhost:7071", ALLOWED, "localhost:7071", app_hosts=app)


def test_app_hostnames_come_from_website_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_HOSTNAME", "GW.azurewebsites.net")
    cors.app_hostnames.cache_clear()
    assert cors.app_hostnames() == frozenset({"gw.azurewebsites.net"})
    monkeypatch.delenv("WEBSITE_HOSTNAME")
    cors.app_hostnames.cache_clear()
    assert cors.app_hostnames() == frozenset()
