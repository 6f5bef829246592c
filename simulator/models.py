"""`GET /models` and `GET /models/{id}`: the configured deployments, OpenAI list shape."""

from __future__ import annotations

from typing import Any

from .errors import deployment_not_found
from .pipeline import Call, JsonOutcome, Outcome


def _model(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "system"}


async def list_models(call: Call) -> Outcome:
    sim = call.sim
    return JsonOutcome({"object": "list", "data": [_model(m, sim.created) for m in sim.config.models]})


async def get_model(call: Call) -> Outcome:
    name = call.request.path_params["model_id"]
    if name not in call.sim.models:
        raise deployment_not_found()
    return JsonOutcome(_model(name, call.sim.created))
