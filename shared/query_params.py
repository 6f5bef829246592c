"""Query parameters of the routes that take them: declared per operation, validated, re-encoded.

The gateway relays a request's query to the upstream only after checking it, and only as it checked
it: the upstream receives a query string rebuilt from the validated values, never the caller's raw
string. Otherwise a second ``stream`` or ``include[]`` that the check did not look at (or an encoding
trick that the upstream decodes differently) would reach Azure unexamined.

Rules, the same for every route:

- **Declared names only.** A name the operation does not declare is refused with 400
  ``unknown_parameter``, not forwarded and not dropped silently. Two names every route takes:
  ``code``, the Functions host's function key (read by :mod:`shared.callers`, never sent upstream), and
  ``api-version``, which Azure's v1 spec allows on every operation (``v1``, the default, or
  ``preview``): ``v1`` is what the gateway serves, so it is accepted and not relayed; ``preview`` is
  refused, since the gateway would otherwise answer a preview request with GA behaviour.
- **Each value checked.** Booleans are ``true``/``false``, integers are decimal within the declared
  range, enums are one of their values; anything else is 400 ``invalid_query_parameter``.
- **One value per name**, except lists (``include[]``, as both official SDKs send arrays): a
  repeated single-valued name is ambiguous (which one would the upstream use?) and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlencode

from shared.callers import KEY_PARAM
from shared.errors import invalid_query_parameter, unknown_parameter

Kind = Literal["boolean", "integer", "string", "enum"]
QueryValue = bool | int | str | tuple[str, ...]

# The Functions host's function key (``code``, its name in any case, as the host and shared.callers
# read it): consumed there, never relayed.
FUNCTION_KEY = KEY_PARAM
# Azure's optional ``api-version`` (AzureAIFoundryModelsApiVersion in the v1 spec): the one value served.
API_VERSION = "api-version"
SERVED_API_VERSION = "v1"
# Cursors and ids are plain (like response ids): nothing that could change the upstream URL's meaning.
_MAX_STRING = 256


@dataclass(frozen=True, slots=True)
class QueryParam:
    """One query parameter an operation accepts: its name on the wire, its type and its bounds."""

    name: str
    kind: Kind
    description: str
    choices: tuple[str, ...] = ()  # enum values (for a list: the values of its items)
    minimum: int | None = None
    maximum: int | None = None
    many: bool = False  # a list, sent as repeated ``name`` (``include[]=a&include[]=b``)

    def parse(self, raw: str) -> bool | int | str:
        """The value ``raw`` stands for, or 400 ``invalid_query_parameter``."""
        if self.kind == "boolean":
            if raw not in ("true", "false"):
                raise invalid_query_parameter(self.name, "expected true or false")
            return raw == "true"
        if self.kind == "integer":
            # Plain decimal digits only: int() would also take "+5", " 5", "5_0" and other spellings.
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
                raise invalid_query_parameter(self.name, "expected a non-negative integer")
            number = int(raw)
            if (self.minimum is not None and number < self.minimum) or (
                    self.maximum is not None and number > self.maximum):
                raise invalid_query_parameter(self.name, f"expected an integer from {self.minimum} to {self.maximum}")
            return number
        if self.kind == "enum" and raw not in self.choices:
            raise invalid_query_parameter(self.name, f"expected one of {', '.join(self.choices)}")
        if self.kind == "string" and not (0 < len(raw) <= _MAX_STRING and raw.isascii() and raw.isprintable()):
            raise invalid_query_parameter(self.name, f"expected 1 to {_MAX_STRING} printable ASCII characters")
        return raw


def parse_query(query_string: bytes, declared: tuple[QueryParam, ...]) -> dict[str, QueryValue]:
    """The validated values of ``query_string`` by parameter name (absent names are left out)."""
    by_name = {param.name: param for param in declared}
    values: dict[str, QueryValue] = {}
    try:
        pairs = parse_qsl(query_string.decode("ascii"), keep_blank_values=True, strict_parsing=False,
                          errors="strict", max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise invalid_query_parameter(None, "the query string could not be read") from None
    for name, raw in pairs:
        if name.upper() == FUNCTION_KEY:
            continue
        if name == API_VERSION:
            if raw != SERVED_API_VERSION:
                raise invalid_query_parameter(name, f"the gateway serves the {SERVED_API_VERSION} API only")
            continue
        param = by_name.get(name)
        if param is None:
            raise unknown_parameter(name, tuple(by_name))
        value = param.parse(raw)
        if param.many:
            listed = values.get(name, ())
            assert isinstance(listed, tuple)
            if value not in listed:  # a repeated include adds nothing; the upstream gets it once
                values[name] = (*listed, str(value))
        elif name in values:
            raise invalid_query_parameter(name, "given more than once")
        else:
            values[name] = value
    return values


def encode_query(values: Mapping[str, QueryValue]) -> str:
    """The query string the upstream receives (``?`` included; empty when there is none)."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if isinstance(value, tuple):
            pairs += [(name, item) for item in value]
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        else:
            pairs.append((name, str(value)))
    return "?" + urlencode(pairs) if pairs else ""
