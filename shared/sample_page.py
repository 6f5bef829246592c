"""GET /api/ui: the sample front end in ``web/`` (plain HTML, one ES module, CSS), served by the app.

``page`` and ``asset`` are the handlers of the ``ui`` and ``ui/{*path}`` routes (``shared/routes.py``).

Serving it from the function app means ``azd up`` deploys a working page next to the API it calls,
and the page can use same-origin relative URLs (no CORS set-up needed to try the gateway).

Anonymous on purpose: these are public static files with no secrets in them, and a browser cannot
attach an ``x-functions-key`` header to a page navigation (a ``?code=`` in the address would leak the
key into history and logs). The API the page calls stays behind function keys; the page has a field
for one.

The page holds a pasted function key, so it must not be a key-forwarder for whoever crafts a link:
it may connect only to its own origin and the gateways in ``UI_GATEWAY_ORIGINS`` (the CSP's
``connect-src``), and ``index.html`` is served with exactly that list in its
``<meta name="gateway-origins">``, which the page checks ``?gateway=`` and the address field against.

Kept off the hot path: nothing is read at import time (``/api/v1/*`` cold starts do not pay for the
page); files are read on first request and cached per (path, mtime, size), so an edit during
``make run`` shows up on reload.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import os
import re
from pathlib import Path, PurePosixPath

from starlette.requests import Request
from starlette.responses import Response

from shared.config import ConfigurationError, parse_origins
from shared.lazy import process_wide

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
INDEX = "index.html"

# Only what the page is made of; anything else in web/ (a README, editor files) is not served.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}

# File names carry no content hash, so a long max-age could pair a new index.html with an old
# app.js after a deploy. "no-cache" + ETag makes every load a cheap conditional request instead.
CACHE_CONTROL = "no-cache"

# Everything comes from the page's own origin; fetch may also reach the configured gateways.
# Blob URLs are how the results download is offered.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src {connect}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
# For the error page of a misconfigured app: nothing at all may load or connect.
LOCKED_DOWN_POLICY = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

BASE_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}

# The element the page reads its allowed gateways from; the served copy carries the configured ones.
_GATEWAY_META = re.compile(rb'(<meta name="gateway-origins" content=")[^"]*(">)')

_cache: dict[Path, tuple[int, int, bytes, str]] = {}


@process_wide
def gateway_origins() -> tuple[str, ...]:
    """``UI_GATEWAY_ORIGINS``: other gateways the page may call (validated: they go into a header and HTML)."""
    return parse_origins(os.environ.get("UI_GATEWAY_ORIGINS"), "UI_GATEWAY_ORIGINS")


def security_headers(origins: tuple[str, ...]) -> dict[str, str]:
    connect = " ".join(("'self'", *origins))
    return {**BASE_HEADERS, "content-security-policy": CONTENT_SECURITY_POLICY.format(connect=connect)}


def with_gateway_origins(page: bytes, origins: tuple[str, ...]) -> bytes:
    """``index.html`` with its gateway list replaced by the configured one (the file's default is for
    copies hosted elsewhere)."""
    listed = html.escape(" ".join(origins), quote=True).encode()
    return _GATEWAY_META.sub(lambda m: m.group(1) + listed + m.group(2), page, count=1)


def resolve_asset(relative: str, root: Path = WEB_ROOT) -> Path | None:
    """The file ``relative`` names inside ``root``, or None when it is outside, hidden or not served.

    Rejects traversal twice: by segment (``..``, hidden names, backslashes, NUL) and again after
    resolving symlinks, so a link pointing out of ``web/`` is refused as well.
    """
    relative = relative.strip("/") or INDEX
    if "\\" in relative or "\x00" in relative:
        return None
    parts = relative.split("/")  # raw segments: PurePosixPath would quietly drop "." and "//"
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    if PurePosixPath(parts[-1]).suffix.lower() not in CONTENT_TYPES:
        return None
    base = root.resolve()
    candidate = base.joinpath(*parts).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate


def _read(path: Path, origins: tuple[str, ...]) -> tuple[bytes, str]:
    """Bytes as served and their ETag, re-read only when the file's mtime or size changed."""
    stat = path.stat()
    cached = _cache.get(path)
    if cached is not None and cached[0] == stat.st_mtime_ns and cached[1] == stat.st_size:
        return cached[2], cached[3]
    body = path.read_bytes()
    if path.name == INDEX:
        body = with_gateway_origins(body, origins)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    _cache[path] = (stat.st_mtime_ns, stat.st_size, body, etag)
    return body, etag


def _not_found(origins: tuple[str, ...]) -> Response:
    return Response(b"Not found.\n", status_code=404,
                    headers={"content-type": "text/plain; charset=utf-8", **security_headers(origins)})


def _misconfigured(error: ConfigurationError) -> Response:
    return Response(f"The sample page is misconfigured: {error}\n".encode(), status_code=500,
                    headers={"content-type": "text/plain; charset=utf-8", **BASE_HEADERS,
                             "content-security-policy": LOCKED_DOWN_POLICY})


def _asset_path(req: Request) -> str:
    """The part after ``/ui/``; from the route when the host fills it, else from the URL path."""
    value = req.path_params.get("path")
    if isinstance(value, str):
        return str(value)
    _, _, rest = str(req.url.path).partition("/ui/")
    return rest


async def _serve(req: Request, relative: str) -> Response:
    try:
        origins = gateway_origins()
    except ConfigurationError as exc:
        return _misconfigured(exc)
    path = resolve_asset(relative)
    if path is None:
        return _not_found(origins)
    body, etag = await asyncio.to_thread(_read, path, origins)
    headers = {
        "content-type": CONTENT_TYPES[path.suffix.lower()],
        "cache-control": CACHE_CONTROL,
        "etag": etag,
        **security_headers(origins),
    }
    if etag in (tag.strip() for tag in req.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "content-type"})
    return Response(body if req.method != "HEAD" else b"", status_code=200, headers=headers)


async def page(req: Request) -> Response:
    """``/api/ui`` redirects to ``/api/ui/`` so that the page's relative asset URLs resolve under it."""
    if not req.url.path.endswith("/"):
        query = f"?{req.url.query}" if req.url.query else ""
        # Relative to the request's last segment ("ui"): correct whatever the route prefix is.
        return Response(status_code=308, headers={"location": f"ui/{query}", "cache-control": CACHE_CONTROL})
    return await _serve(req, INDEX)


async def asset(req: Request) -> Response:
    """A file of the page (``/api/ui/app.js``, ...); ``/api/ui/`` is the page itself."""
    return await _serve(req, _asset_path(req))
