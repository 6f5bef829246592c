"""An upload's ``expires_after``, read from whichever of the three spellings the client used.

A multipart form has no objects, so clients flatten ``expires_after = {anchor, seconds}``, and not all
the same way:

* the OpenAI SDKs send two fields, ``expires_after[anchor]`` and ``expires_after[seconds]``;
* Azure's documented upload (``curl -F expires_after.seconds=... -F expires_after.anchor=...``)
  sends ``expires_after.anchor`` and ``expires_after.seconds``;
* OpenAPI 3.0 encodes an object property of a multipart body as one ``application/json`` part, so
  a client generated from Azure's description (``AzureCreateFileRequestMultiPart``) sends one
  ``expires_after`` part holding ``{"anchor": ..., "seconds": ...}``.

All three are read. A form that uses two of them is refused (400 ``invalid_multipart``) like a
field sent twice: which copy counts would depend on the reader.

The range is OpenAI's, 3600 s (1 hour) to 2592000 s (30 days). Azure documents 1209600 to 2592000
(14 to 30 days) for batch files; OpenAI's range holds Azure's, so scripts written for either are
accepted. ``expires_after`` stays optional although Azure's description marks it required: OpenAI's
SDKs and Azure's own documentation send it only when wanted, and without it a file is kept
``DATA_RETENTION_DAYS`` (30 days by default, OpenAI's default for batch files).
"""

from __future__ import annotations

from collections.abc import Mapping

import jiter

from shared.errors import invalid_json, invalid_multipart, invalid_value, missing_parameter

ANCHOR = "created_at"
MIN_SECONDS, MAX_SECONDS = 3600, 30 * 24 * 3600
# The one-part spelling, and the names its members are reported under in errors.
JSON_PART = "expires_after"
_JSON_PARAMS = ("expires_after.anchor", "expires_after.seconds")
# The two-field spellings, (anchor, seconds) each.
_FLAT = (("expires_after[anchor]", "expires_after[seconds]"), ("expires_after.anchor", "expires_after.seconds"))
# Every form field name that carries (part of) expires_after.
FIELDS = (JSON_PART, *(name for pair in _FLAT for name in pair))


def expiry_seconds(fields: Mapping[str, str]) -> int | None:
    """Seconds after ``created_at`` at which the file expires; None when the form does not say."""
    flat = [pair for pair in _FLAT if any(name in fields for name in pair)]
    part = fields.get(JSON_PART)
    if len(flat) + (part is not None) > 1:
        raise invalid_multipart("expires_after is sent in two spellings; send it once (readers disagree on which "
                                "copy counts).", param=JSON_PART)
    if part is not None:
        params = _JSON_PARAMS
        anchor, seconds = _members(part)
    elif flat:
        params = flat[0]
        anchor, seconds = fields.get(params[0]), fields.get(params[1])
    else:
        return None
    if anchor is None:
        raise missing_parameter(params[0])
    if seconds is None:
        raise missing_parameter(params[1])
    if anchor != ANCHOR:
        raise invalid_value(params[0], f"the only anchor is {ANCHOR!r}")
    if not seconds.isascii() or not seconds.isdigit() or not MIN_SECONDS <= int(seconds) <= MAX_SECONDS:
        raise invalid_value(params[1], f"expected whole seconds from {MIN_SECONDS} to {MAX_SECONDS}")
    return int(seconds)


def _members(text: str) -> tuple[str | None, str | None]:
    """``anchor`` and ``seconds`` of the JSON part, as the flat spellings carry them (text)."""
    try:
        value = jiter.from_json(text.encode(), allow_inf_nan=False, catch_duplicate_keys=True)
    except ValueError as exc:
        raise invalid_json(f"The expires_after part is not one JSON object ({exc}); send "
                           '{"anchor": "created_at", "seconds": N}.', param=JSON_PART) from None
    if not isinstance(value, dict):
        raise invalid_value(JSON_PART, 'expected a JSON object {"anchor": "created_at", "seconds": N}')
    unknown = sorted(set(value) - {"anchor", "seconds"})
    if unknown:
        raise invalid_value(f"{JSON_PART}.{unknown[0][:40]}", "expires_after takes only anchor and seconds")
    anchor, seconds = value.get("anchor"), value.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
        raise invalid_value(_JSON_PARAMS[1], "expected an integer")
    return (None if anchor is None else str(anchor)), (None if seconds is None else str(seconds))


__all__ = ["ANCHOR", "FIELDS", "JSON_PART", "MAX_SECONDS", "MIN_SECONDS", "expiry_seconds"]
