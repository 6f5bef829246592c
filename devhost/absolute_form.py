"""uvicorn's httptools protocol, keeping the host an absolute-form request target names.

Imported only when httptools is installed (uvicorn falls back to h11 otherwise, whose scope keeps the
whole target in ``raw_path``, where :class:`devhost.host_check.HostCheck` reads it).
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from devhost.host_check import absolute_form_authority


class AbsoluteFormHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, keeping the host an absolute-form target names.

    httptools hands the app only the target's path, so ``GET http://evil.test/ HTTP/1.1`` with
    ``Host: localhost`` would look like a request for localhost. RFC 9112 section 3.2.2 says the
    target's authority wins over Host: it replaces the Host headers here, before the app sees them.
    """

    def on_headers_complete(self) -> None:
        authority = absolute_form_authority(self.url)
        if authority is not None:
            self.headers[:] = [(key, value) for key, value in self.headers if key != b"host"]
            self.headers.append((b"host", authority))
        super().on_headers_complete()
