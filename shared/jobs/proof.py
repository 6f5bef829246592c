"""Whether a queue message provably belongs to the job it names.

Anyone who can write to the queue can write a job id into a message, so an id alone proves nothing:
a garbage message mentioning ``ejob_B`` must not fail job B, and a forged chunk message must not
write into B's results. Each job row therefore holds a random ``token`` that travels in every
message of that job and nowhere else (never in the job view callers read):

* ``POST /jobs`` and ``client.submit_job`` create the row with a fresh token and put it in the job
  message; the planner copies the row's token into every chunk message it writes;
* a job message without a token (a back end writing raw JSON) gets, as its token, a digest of its
  own canonical form: a redelivered copy proves itself, a different message with the same id does
  not.

A message proves its job when its token equals the row's (compared in constant time). Only then
may the message change the job: plan it, run a chunk, or fail it. Rows without a token (written
before tokens existed) accept any message, as before; a message whose job has no row yet may create
one (nobody else can own an id no row holds). Everything else is dropped to the poison queue with
a logged reason and the job is left alone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

TOKEN_FIELD = "token"
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{22,128}$"


class Unproven(Exception):
    """The message names a job it cannot prove it belongs to: drop it and leave the job alone."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def digest_token(canonical_json: str) -> str:
    """The token of a tokenless job message: stable for that exact message, unguessable for others."""
    return "d" + hashlib.sha256(canonical_json.encode("utf-8")).hexdigest()


def proves(row: Mapping[str, Any] | None, token: object) -> bool:
    """True when a message carrying ``token`` may act on the job whose row is ``row``."""
    if row is None:
        return True
    expected = row.get(TOKEN_FIELD)
    if not expected:
        return True
    return isinstance(token, str) and hmac.compare_digest(token.encode(), str(expected).encode())
