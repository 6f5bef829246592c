"""GET /api/v1/models and GET /api/health (anonymous, never calls upstream)."""

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from blueprints.methods import ALL_METHODS
from shared import gateway
from shared.context import RequestContext
from shared.http import serve

bp = func.Blueprint()


async def _models(ctx: RequestContext, req: Request) -> gateway.Reply:
    return gateway.list_models()


@bp.route(route="v1/models", methods=ALL_METHODS)
async def models(req: Request) -> Response:
    return await serve(req, {"GET": _models}, route="v1/models")


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: Request) -> Response:
    return JSONResponse({"status": "ok"})


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def openapi(req: Request) -> Response:
    """The API description is public: it holds no secrets and lets tools and SDK generators start."""
    from shared.openapi import document

    return Response(document(), media_type="application/json")
