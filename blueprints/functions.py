"""Every Azure Functions function of the app: one HTTP function per row of the route table
(``shared/routes.py``), and the embedding-jobs queue triggers. No logic lives here.

Every HTTP function takes and returns the FastAPI extension's ``Request``/``Response``: that is what
lets the host stream a response as it is produced, and the worker only enables streaming when
every HTTP function uses them. Function names come from the table and never change (telemetry,
the infra tests and the platform's function keys refer to them).
"""

from collections.abc import Awaitable, Callable

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from shared.lazy import finish_warm_up
from shared.routes import API_ROUTES, PUBLIC_ROUTES, ApiRoute, PublicRoute, resolve

# API routes take every method, so that the app (not the host, which answers an unknown method with
# a bare 404) answers a wrong one with an OpenAI-shaped 405 and answers CORS preflights.
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]

# The poison queue name is the jobs queue's name plus "-poison" (what the host moves messages to);
# an app-setting expression with a suffix resolves on the Functions host like a whole one.
JOBS_QUEUE = "%EMBEDDING_JOBS_QUEUE%"
POISON_QUEUE = "%EMBEDDING_JOBS_QUEUE%-poison"

HttpFunction = Callable[[Request], Awaitable[Response]]

bp = func.Blueprint()


def _api_function(route: ApiRoute) -> HttpFunction:
    async def function(req: Request) -> Response:
        # Imported here, not at indexing: the request pipeline loads in the warm-up (shared/lazy.py).
        finish_warm_up()
        from shared.http import serve

        return await serve(req, route)

    return function


def _public_function(route: PublicRoute) -> HttpFunction:
    async def function(req: Request) -> Response:
        finish_warm_up()
        response: Response = await resolve(route.handler)(req)
        return response

    return function


def _register(function: HttpFunction, name: str, path: str, methods: list[str], auth: func.AuthLevel) -> None:
    function.__name__ = function.__qualname__ = name  # what tracebacks and the worker's logs show
    bp.function_name(name)(bp.route(route=path, methods=methods, auth_level=auth)(function))


for api_route in API_ROUTES:
    _register(_api_function(api_route), api_route.function, api_route.path, ALL_METHODS, func.AuthLevel.FUNCTION)
for public_route in PUBLIC_ROUTES:
    _register(_public_function(public_route), public_route.function, public_route.path, list(public_route.methods),
              func.AuthLevel.ANONYMOUS)


# The job pipeline is imported on the first message, so HTTP-only instances never load it.

@bp.queue_trigger(arg_name="msg", queue_name=JOBS_QUEUE, connection="AzureWebJobsStorage")
async def embedding_jobs_worker(msg: func.QueueMessage) -> None:
    finish_warm_up()
    from shared.jobs.queue_trigger import handle_message

    await handle_message(msg.get_body(), msg.id or "", msg.dequeue_count or 1)


@bp.queue_trigger(arg_name="msg", queue_name=POISON_QUEUE, connection="AzureWebJobsStorage")
async def embedding_jobs_poison(msg: func.QueueMessage) -> None:
    finish_warm_up()
    from shared.jobs.poison import handle_poison

    await handle_poison(msg.get_body(), msg.id or "")
