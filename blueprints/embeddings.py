"""POST /api/v1/embeddings (synchronous, small inputs; large ones go through embedding jobs)."""

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from blueprints.methods import ALL_METHODS
from shared import gateway
from shared.config import get_settings
from shared.context import RequestContext
from shared.http import read_body, serve

bp = func.Blueprint()


async def _create(ctx: RequestContext, req: Request) -> gateway.Reply:
    return await gateway.embeddings(ctx, await read_body(req, get_settings().max_request_bytes))


@bp.route(route="v1/embeddings", methods=ALL_METHODS)
async def embeddings(req: Request) -> Response:
    return await serve(req, {"POST": _create}, route="v1/embeddings")
