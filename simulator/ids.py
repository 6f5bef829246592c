"""Random identifiers in OpenAI/Azure formats.

Ids are always random (never derived from `--seed`): a gateway may persist response ids across
simulator restarts, and colliding ids there would make end-to-end tests lie.
"""

from __future__ import annotations

import os
import random

_rng = random.Random(os.urandom(16))


def hex_id(prefix: str, nbits: int = 96) -> str:
    """`prefix` followed by random lowercase hex (cheaper than uuid4 on the hot path)."""
    return f"{prefix}{_rng.getrandbits(nbits):0{nbits // 4}x}"


def request_id() -> str:
    """A UUID-shaped id like the ones Azure puts in `x-request-id` / `apim-request-id`."""
    h = f"{_rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"
