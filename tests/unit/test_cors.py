"""CORS decisions: exact origins only, plus the app's own origin."""

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
