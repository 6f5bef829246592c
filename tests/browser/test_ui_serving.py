"""/api/ui serves web/ from the function app: right types, cache validators, nothing outside web/.

No browser needed: these run wherever the local stack runs.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shared import sample_page


def test_resolve_asset_serves_the_page_files_only(tmp_path: Path) -> None:
    web = tmp_path / "web"
    (web / "img").mkdir(parents=True)
    for name in ("index.html", "app.js", "img/logo.svg", "README.md", ".secret.js"):
        (web / name).write_text("x")
    (tmp_path / "outside.js").write_text("x")
    (web / "link.js").symlink_to(tmp_path / "outside.js")

    assert sample_page.resolve_asset("", web) == (web / "index.html").resolve()
    assert sample_page.resolve_asset("/", web) == (web / "index.html").resolve()
    assert sample_page.resolve_asset("app.js", web) == (web / "app.js").resolve()
    assert sample_page.resolve_asset("img/logo.svg", web) == (web / "img" / "logo.svg").resolve()
    for refused in ("../outside.js", "img/../../outside.js", "..", "img/..", "./app.js", ".secret.js",
                    "README.md", "link.js", "img\\..\\..\\outside.js", "app.js\x00.png", "missing.js",
                    "img", "/etc/passwd", "//outside.js"):
        assert sample_page.resolve_asset(refused, web) is None, refused


@pytest.mark.parametrize(("path", "content_type"), [
    ("/api/ui/", "text/html; charset=utf-8"),
    ("/api/ui/index.html", "text/html; charset=utf-8"),
    ("/api/ui/app.js", "text/javascript; charset=utf-8"),
    ("/api/ui/styles.css", "text/css; charset=utf-8"),
])
def test_page_files_are_served_with_type_and_cache_headers(http: httpx.Client, path: str, content_type: str) -> None:
    response = http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    etag = response.headers["etag"]
    again = http.get(path, headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag


def test_ui_without_slash_redirects_keeping_the_query(http: httpx.Client) -> None:
    response = http.get("/api/ui", params={"gateway": "http://127.0.0.1:1/api"})
    assert response.status_code == 308
    assert response.headers["location"] == "ui/?gateway=http%3A%2F%2F127.0.0.1%3A1%2Fapi"
    followed = http.get("/api/ui", follow_redirects=True)
    assert followed.status_code == 200 and str(followed.url).endswith("/api/ui/")
    assert b'<script type="module" src="app.js">' in followed.content


def test_nothing_outside_web_is_served(http: httpx.Client) -> None:
    for path in ("/api/ui/../host.json", "/api/ui/%2e%2e/host.json", "/api/ui/..%2fhost.json",
                 "/api/ui/%2e%2e%2f%2e%2e%2fREADME.md", "/api/ui/missing.js", "/api/ui/README.md"):
        response = http.get(httpx.URL(path))
        assert response.status_code == 404, (path, response.status_code)


def test_head_has_no_body(http: httpx.Client) -> None:
    response = http.head("/api/ui/app.js")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-type"].startswith("text/javascript")
