"""POST /api/v1/chat/completions."""

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from blueprints.methods import ALL_METHODS
from shared import gateway
from shared.config import get_settings
from shared.context import RequestContext
from shared.http import read_body, serve

bp = func.Blueprint()


async def _create(ctx: RequestContext, req: Request) -> gateway.Reply:
    return await gateway.chat_completions(ctx, await read_body(req, get_settings().max_request_bytes))


@bp.route(route="v1/chat/completions", methods=ALL_METHODS)
async def chat_completions(req: Request) -> Response:
    return await serve(req, {"POST": _create}, route="v1/chat/completions")
