"""`/_sim/*`: unauthenticated control plane used by tests to steer and observe the simulator.

* ``GET  /_sim/config``  -> current config.
* ``POST /_sim/config``  JSON object of fields to change -> the full new config.
* ``GET  /_sim/faults``  -> ``{"pending": [...]}``.
* ``POST /_sim/faults``  one fault, a list, or ``{"faults": [...]}`` -> ``{"queued": n, "pending": [...]}``.
* ``DELETE /_sim/faults`` -> ``{"pending": []}``.
* ``GET  /_sim/stats?route=&limit=`` -> counters and recent request records.
* ``POST /_sim/reset``   optional ``{"config": true}`` -> ``{"ok": true}``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import parse_faults, route_key
from .state import Simulator


def _bad(message: str) -> Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return JSONResponse(body, 400)


async def _json(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw) if raw.strip() else None


def routes(sim: Simulator) -> list[Route]:
    async def get_config(request: Request) -> Response:
        return JSONResponse(sim.config.to_dict())

    async def set_config(request: Request) -> Response:
        try:
            patch = await _json(request)
            if not isinstance(patch, dict):
                return _bad("config patch must be a JSON object")
            sim.apply_config(sim.config.patched(patch))
        except ValueError as exc:  # includes JSONDecodeError
            return _bad(str(exc))
        return JSONResponse(sim.config.to_dict())

    async def get_faults(request: Request) -> Response:
        return JSONResponse({"pending": sim.faults.pending()})

    async def add_faults(request: Request) -> Response:
        try:
            faults = parse_faults(await _json(request))
        except ValueError as exc:
            return _bad(str(exc))
        sim.faults.add(faults)
        return JSONResponse({"queued": len(faults), "pending": sim.faults.pending()})

    async def clear_faults(request: Request) -> Response:
        sim.faults.clear()
        return JSONResponse({"pending": []})

    async def stats(request: Request) -> Response:
        route = request.query_params.get("route")
        limit = request.query_params.get("limit")
        if limit is not None and not limit.isdigit():
            return _bad("limit must be a non-negative integer")
        snapshot = sim.stats.snapshot(route_key(route) if route else None, int(limit) if limit else None)
        snapshot["faults_pending"] = len(sim.faults.pending())
        snapshot["stored_responses"] = len(sim.store)
        return JSONResponse(snapshot)

    async def reset(request: Request) -> Response:
        try:
            options = await _json(request)
        except ValueError as exc:
            return _bad(str(exc))
        sim.reset(config=isinstance(options, dict) and options.get("config") is True)
        return JSONResponse({"ok": True})

    return [
        Route("/_sim/config", get_config, methods=["GET"]),
        Route("/_sim/config", set_config, methods=["POST", "PATCH"]),
        Route("/_sim/faults", get_faults, methods=["GET"]),
        Route("/_sim/faults", add_faults, methods=["POST"]),
        Route("/_sim/faults", clear_faults, methods=["DELETE"]),
        Route("/_sim/stats", stats, methods=["GET"]),
        Route("/_sim/reset", reset, methods=["POST"]),
    ]
