"""Embedding jobs: POST /api/v1/embeddings/jobs, GET .../jobs/{job_id}, GET .../jobs/{job_id}/results,
and the two queue triggers that run them (the jobs queue and its poison queue)."""

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from blueprints.methods import ALL_METHODS
from shared.config import get_settings
from shared.context import RequestContext
from shared.gateway import Reply
from shared.http import read_body, route_param, serve

bp = func.Blueprint()

# The poison queue name is the jobs queue's name plus "-poison" (what the host moves messages to);
# an app-setting expression with a suffix resolves on the Functions host like a whole one.
POISON_QUEUE = "%EMBEDDING_JOBS_QUEUE%-poison"


async def _submit(ctx: RequestContext, req: Request) -> Reply:
    from shared.jobs import service

    return await service.submit(ctx, await read_body(req, get_settings().max_request_bytes))


async def _status(ctx: RequestContext, req: Request) -> Reply:
    from shared.jobs import service

    return await service.status(ctx, route_param(req, "job_id"))


async def _results(ctx: RequestContext, req: Request) -> Reply:
    from shared.jobs import service

    job_id = req.path_params.get("job_id") or req.url.path.rstrip("/").rsplit("/", 2)[-2]
    return await service.results(ctx, str(job_id))


@bp.route(route="v1/embeddings/jobs", methods=ALL_METHODS)
async def embedding_jobs(req: Request) -> Response:
    return await serve(req, {"POST": _submit}, route="v1/embeddings/jobs")


@bp.route(route="v1/embeddings/jobs/{job_id}", methods=ALL_METHODS)
async def embedding_job(req: Request) -> Response:
    return await serve(req, {"GET": _status}, route="v1/embeddings/jobs/{job_id}")


@bp.route(route="v1/embeddings/jobs/{job_id}/results", methods=ALL_METHODS)
async def embedding_job_results(req: Request) -> Response:
    return await serve(req, {"GET": _results}, route="v1/embeddings/jobs/{job_id}/results")


@bp.queue_trigger(arg_name="msg", queue_name="%EMBEDDING_JOBS_QUEUE%", connection="AzureWebJobsStorage")
async def embedding_jobs_worker(msg: func.QueueMessage) -> None:
    from shared.jobs.dispatch import handle_message

    await handle_message(msg.get_body(), msg.id or "", msg.dequeue_count or 1)


@bp.queue_trigger(arg_name="msg", queue_name=POISON_QUEUE, connection="AzureWebJobsStorage")
async def embedding_jobs_poison(msg: func.QueueMessage) -> None:
    from shared.jobs.poison import handle_poison

    await handle_poison(msg.get_body(), msg.id or "")
