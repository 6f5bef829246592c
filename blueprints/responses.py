"""The Responses API: POST /api/v1/responses, GET/DELETE /api/v1/responses/{response_id}."""

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from blueprints.methods import ALL_METHODS
from shared import gateway
from shared.config import get_settings
from shared.context import RequestContext
from shared.http import read_body, route_param, serve

bp = func.Blueprint()


async def _create(ctx: RequestContext, req: Request) -> gateway.Reply:
    return await gateway.create_response(ctx, await read_body(req, get_settings().max_request_bytes))


async def _retrieve(ctx: RequestContext, req: Request) -> gateway.Reply:
    return await gateway.retrieve_response(ctx, route_param(req, "response_id"))


async def _delete(ctx: RequestContext, req: Request) -> gateway.Reply:
    return await gateway.delete_response(ctx, route_param(req, "response_id"))


@bp.route(route="v1/responses", methods=ALL_METHODS)
async def responses_create(req: Request) -> Response:
    return await serve(req, {"POST": _create}, route="v1/responses")


@bp.route(route="v1/responses/{response_id}", methods=ALL_METHODS)
async def responses_item(req: Request) -> Response:
    return await serve(req, {"GET": _retrieve, "DELETE": _delete}, route="v1/responses/{response_id}")
