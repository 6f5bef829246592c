"""GET /api/ui: the sample front end in ``web/`` (plain HTML, one ES module, CSS), served by the app.

Serving it from the function app means ``azd up`` deploys a working page next to the API it calls,
and the page can use same-origin relative URLs (no CORS set-up needed to try the gateway).

Anonymous on purpose: these are public static files with no secrets in them, and a browser cannot
attach an ``x-functions-key`` header to a page navigation (a ``?code=`` in the address would leak the
key into history and logs). The API the page calls stays behind function keys; the page has a field
for one.

Kept off the hot path: nothing is read at import time (``/api/v1/*`` cold starts do not pay for the
page); files are read on first request and cached per (path, mtime, size), so an edit during
``make run`` shows up on reload.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path, PurePosixPath

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

bp = func.Blueprint()

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

# The page calls a gateway whose address the user may change, hence connect-src *; everything
# else comes from the page's own origin. Blob URLs are how the results download is offered.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src *; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": CONTENT_SECURITY_POLICY,
}

_cache: dict[Path, tuple[int, int, bytes, str]] = {}


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


def _read(path: Path) -> tuple[bytes, str]:
    """Bytes and ETag of a file, re-read only when its mtime or size changed."""
    stat = path.stat()
    cached = _cache.get(path)
    if cached is not None and cached[0] == stat.st_mtime_ns and cached[1] == stat.st_size:
        return cached[2], cached[3]
    body = path.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    _cache[path] = (stat.st_mtime_ns, stat.st_size, body, etag)
    return body, etag


def _not_found() -> Response:
    return Response(b"Not found.\n", status_code=404,
                    headers={"content-type": "text/plain; charset=utf-8", **SECURITY_HEADERS})


def _asset_path(req: Request) -> str:
    """The part after ``/ui/``; from the route when the host fills it, else from the URL path."""
    value = req.path_params.get("path")
    if isinstance(value, str):
        return str(value)
    _, _, rest = str(req.url.path).partition("/ui/")
    return rest


async def _serve(req: Request, relative: str) -> Response:
    path = resolve_asset(relative)
    if path is None:
        return _not_found()
    body, etag = await asyncio.to_thread(_read, path)
    headers = {
        "content-type": CONTENT_TYPES[path.suffix.lower()],
        "cache-control": CACHE_CONTROL,
        "etag": etag,
        **SECURITY_HEADERS,
    }
    if etag in (tag.strip() for tag in req.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "content-type"})
    return Response(body if req.method != "HEAD" else b"", status_code=200, headers=headers)


@bp.route(route="ui", methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
async def ui_index(req: Request) -> Response:
    """``/api/ui`` redirects to ``/api/ui/`` so that the page's relative asset URLs resolve under it."""
    if not req.url.path.endswith("/"):
        query = f"?{req.url.query}" if req.url.query else ""
        # Relative to the request's last segment ("ui"): correct whatever the route prefix is.
        return Response(status_code=308, headers={"location": f"ui/{query}", "cache-control": CACHE_CONTROL})
    return await _serve(req, INDEX)


@bp.route(route="ui/{*path}", methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
async def ui_asset(req: Request) -> Response:
    """A file of the page (``/api/ui/app.js``, ...); ``/api/ui/`` is the page itself."""
    return await _serve(req, _asset_path(req))
