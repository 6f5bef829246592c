"""The Azure Functions app: registers the blueprints, nothing else.

Every HTTP route uses the FastAPI extension's request/response types, which is what lets the host
stream responses (see ``blueprints/``); ``/api/v1/*`` routes require a function key in Azure.
"""

import azure.functions as func

from blueprints import chat, embeddings, jobs, meta, responses, ui
from shared.lazy import warm_up_in_background

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (chat.bp, responses.bp, embeddings.bp, jobs.bp, meta.bp, ui.bp):
    app.register_functions(blueprint)

# The OpenAI SDK loads while the host finishes starting, not inside the first request (cold start).
warm_up_in_background()
