"""Who a job belongs to: who may read it over HTTP, and whose token budget it spends.

* A job submitted over HTTP belongs to its submitter, ``ctx.caller`` (``key:<digest>``,
  ``principal:<id>`` or ``anonymous``, see ``shared.callers``). Anyone else gets the same 404 as
  for a job that does not exist, for its status and its results.
* A job a back end put straight onto the queue belongs to the ``owner`` its message names (queue
  writers are trusted by RBAC, so a back end acting for a team names that team's identity). A
  message without ``owner`` makes a job no HTTP caller can read: its producer reads status and
  results from storage, which it can reach anyway; its tokens are charged to the shared
  :data:`QUEUE_PAYER` budget.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

OWNER_FIELD = "owner"
# The budget that unowned queue jobs share (a name no HTTP caller can have: callers are key:/principal:/anonymous).
QUEUE_PAYER = "queue"


def owns(row: Mapping[str, Any], caller: str) -> bool:
    owner = row.get(OWNER_FIELD)
    return isinstance(owner, str) and hmac.compare_digest(owner.encode(), caller.encode())


def payer(row: Mapping[str, Any]) -> str:
    owner = row.get(OWNER_FIELD)
    return owner if isinstance(owner, str) and owner else QUEUE_PAYER
