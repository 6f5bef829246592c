"""Read the parts of ``host.json`` that change how the local host behaves.

Only the settings the gateway relies on are honoured (route prefix, function
timeout, queue trigger tuning); everything else in host.json is ignored, which
is also what keeps a typo here from stopping the local host.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devhost.jsonfile import read_json_object

DEFAULT_ROUTE_PREFIX = "api"

# host.json accepts .NET TimeSpan strings: "[-][d.]hh:mm:ss[.fffffff]".
_TIMESPAN = re.compile(
    r"^(?P<neg>-)?(?:(?P<days>\d+)\.)?(?P<hours>\d+):(?P<minutes>\d+):(?P<seconds>\d+(?:\.\d+)?)$"
)


class HostConfigError(ValueError):
    """host.json is present but cannot be used."""


def parse_timespan(value: Any, *, numbers_are_ms: bool = False) -> float | None:
    """Convert a host.json TimeSpan to seconds.

    Returns None for "-1" (the host's spelling of "no limit"). Plain numbers
    are accepted because older queue settings were given in milliseconds.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise HostConfigError(f"not a time span: {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1000.0 if numbers_are_ms else float(value)
    text = str(value).strip()
    if text == "-1":
        return None
    match = _TIMESPAN.match(text)
    if not match:
        raise HostConfigError(f"not a time span (expected hh:mm:ss): {value!r}")
    seconds = (
        int(match["days"] or 0) * 86400
        + int(match["hours"]) * 3600
        + int(match["minutes"]) * 60
        + float(match["seconds"])
    )
    if match["neg"]:
        return None
    return seconds


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` with the host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"

    @property
    def visibility_timeout_seconds(self) -> int:
        """The queue service takes whole seconds; round up so a delay is never dropped."""
        return max(0, math.ceil(self.visibility_timeout))


@dataclass(frozen=True)
class HostConfig:
    """The subset of host.json that the local host honours."""

    route_prefix: str = DEFAULT_ROUTE_PREFIX
    function_timeout: float | None = None
    queues: QueueOptions = field(default_factory=QueueOptions)
    source: Path | None = None


def _queue_options(raw: dict[str, Any]) -> QueueOptions:
    batch_size = int(raw.get("batchSize", 16))
    if not 1 <= batch_size <= 32:
        raise HostConfigError(f"extensions.queues.batchSize must be 1..32, got {batch_size}")
    threshold_raw = raw.get("newBatchThreshold")
    threshold = batch_size // 2 if threshold_raw is None else int(threshold_raw)
    if threshold < 0:
        raise HostConfigError("extensions.queues.newBatchThreshold must be >= 0")
    max_dequeue = int(raw.get("maxDequeueCount", 5))
    if max_dequeue < 1:
        raise HostConfigError("extensions.queues.maxDequeueCount must be >= 1")
    visibility = parse_timespan(raw.get("visibilityTimeout", "00:00:00"), numbers_are_ms=True) or 0.0
    polling = parse_timespan(raw.get("maxPollingInterval", "00:01:00"), numbers_are_ms=True)
    # The host refuses intervals under 100 ms; clamp instead of failing.
    polling = 60.0 if polling is None else max(0.1, polling)
    encoding = str(raw.get("messageEncoding", "base64")).strip().lower()
    if encoding not in ("base64", "none"):
        raise HostConfigError(f"extensions.queues.messageEncoding must be base64 or none, got {encoding!r}")
    return QueueOptions(
        batch_size=batch_size,
        new_batch_threshold=threshold,
        max_dequeue_count=max_dequeue,
        visibility_timeout=visibility,
        max_polling_interval=polling,
        message_encoding=encoding,
    )


def parse_host_config(data: dict[str, Any], source: Path | None = None) -> HostConfig:
    """Build a HostConfig from the parsed JSON document."""
    extensions = data.get("extensions") or {}
    http = extensions.get("http") or {}
    prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX)
    prefix = "" if prefix is None else str(prefix).strip("/")
    return HostConfig(
        route_prefix=prefix,
        function_timeout=parse_timespan(data.get("functionTimeout")),
        queues=_queue_options(extensions.get("queues") or {}),
        source=source,
    )


def load_host_config(script_root: Path) -> HostConfig:
    """Read ``host.json`` from the script root; defaults when it is absent."""
    path = script_root / "host.json"
    if not path.is_file():
        return HostConfig()
    return parse_host_config(read_json_object(path, HostConfigError), source=path)
