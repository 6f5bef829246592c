"""Put a job-pipeline message on a queue, encoded the way the Functions host will decode it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from shared.jobs import messages

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

# The queue service accepts visibility delays of up to 7 days.
MAX_DELAY_SECONDS = 7 * 24 * 3600


async def put_message(queue: QueueClient, message_json: str, *, delay: float = 0.0) -> None:
    """Send ``message_json`` base64-encoded, invisible for ``delay`` seconds (rounded up)."""
    seconds = min(MAX_DELAY_SECONDS, math.ceil(delay)) if delay > 0 else None
    await queue.send_message(messages.encode(message_json), visibility_timeout=seconds)


async def put_raw_message(queue: QueueClient, body: bytes) -> None:
    """Re-send a message body exactly as received (after the host's base64 decoding)."""
    import base64

    await queue.send_message(base64.b64encode(body).decode("ascii"))
