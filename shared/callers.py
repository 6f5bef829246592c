"""Who is calling: the identity per-caller limits and logs are keyed on.

- With App Service Authentication on (the platform sets ``WEBSITE_AUTH_ENABLED=True``), the platform
  validates the Entra token, strips any client-sent ``X-MS-CLIENT-PRINCIPAL*`` headers and sets its
  own: only then is the principal id trusted.
- Otherwise each caller has its own function key (``x-functions-key`` header or ``code`` query
  parameter), already checked by the Functions host: a digest of the key names the caller, so the
  key itself never reaches logs or storage.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping


def easy_auth_enabled() -> bool:
    return os.environ.get("WEBSITE_AUTH_ENABLED", "").strip().lower() == "true"


def identify(headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    if easy_auth_enabled():
        principal = headers.get("x-ms-client-principal-id")
        if principal:
            return f"principal:{principal}"
    key = headers.get("x-functions-key") or query.get("code")
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return "anonymous"
