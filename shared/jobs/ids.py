"""Job ids: opaque to callers, but checked strictly before they reach a table key or a blob name."""

from __future__ import annotations

import re
import secrets

PREFIX = "ejob_"
PATTERN = r"^ejob_[0-9a-f]{32}$"
_ID = re.compile(PATTERN)


def new_job_id() -> str:
    return PREFIX + secrets.token_hex(16)


def is_job_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None
