"""Application factory: routes under `/openai/v1/` (Azure v1) and `/v1/` (plain OpenAI base URL)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import chat, control, embeddings, models, responses
from .config import SimulatorConfig
from .pipeline import Operation, endpoint
from .state import Simulator
from .wire import TRANSPORT_SCOPE_KEY

PREFIXES = ("/openai/v1", "/v1")

# (method, path, operation); most frequently hit first, since routes are matched in order.
OPERATIONS: tuple[tuple[str, str, Operation], ...] = (
    ("POST", "/chat/completions", Operation("chat/completions", "ChatCompletions_Create", chat.create, "chat")),
    ("POST", "/responses", Operation("responses", "Responses_Create", responses.create, "chat")),
    ("POST", "/embeddings", Operation("embeddings", "Embeddings_Create", embeddings.create, "embeddings")),
    (
        "GET",
        "/responses/{response_id}",
        Operation("responses/{id}", "Responses_Get", responses.retrieve, has_body=False),
    ),
    (
        "DELETE",
        "/responses/{response_id}",
        Operation("responses/{id}", "Responses_Delete", responses.delete, has_body=False),
    ),
    (
        "POST",
        "/responses/{response_id}/cancel",
        Operation("responses/{id}/cancel", "Responses_Cancel", responses.cancel, has_body=False),
    ),
    (
        "GET",
        "/responses/{response_id}/input_items",
        Operation("responses/{id}/input_items", "Responses_ListInputItems", responses.input_items, has_body=False),
    ),
    ("GET", "/models", Operation("models", "Models_List", models.list_models, has_body=False)),
    ("GET", "/models/{model_id}", Operation("models/{id}", "Models_Get", models.get_model, has_body=False)),
)


class SimulatorApp(Starlette):
    """Starlette app that also exposes the server transport to handlers (for scripted aborts)."""

    simulator: Simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # uvicorn's `send` is a bound method of its request cycle, which owns the transport.
            scope[TRANSPORT_SCOPE_KEY] = getattr(getattr(send, "__self__", None), "transport", None)
        await super().__call__(scope, receive, send)


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = "Resource not found" if status == 404 else (exc.detail if isinstance(exc, HTTPException) else "error")
    return JSONResponse({"error": {"code": str(status), "message": message}}, status)


def create_app(config: SimulatorConfig | None = None) -> SimulatorApp:
    """Build an app with its own state; `app.simulator` gives in-process access to it."""
    sim = Simulator(config or SimulatorConfig())
    routes = [
        Route(prefix + path, endpoint(sim, op), methods=[method])
        for method, path, op in OPERATIONS
        for prefix in PREFIXES
    ]
    routes += [Route("/health", _health, methods=["GET"]), *control.routes(sim)]
    app = SimulatorApp(routes=routes, exception_handlers={HTTPException: _http_error})
    app.simulator = sim
    return app
