"""The Azure Functions app: registers the blueprints, nothing else.

The routes are listed once, in ``shared/routes.py``; ``blueprints/functions.py`` turns each into an
HTTP function (FastAPI extension types, which is what lets the host stream) and holds the
embedding-jobs queue triggers; ``blueprints/maintenance.py`` holds the timer that deletes expired
job, batch and file data. ``/api/v1/*`` routes require a function key in Azure.
"""

from shared.lazy import importing_without_gc, warm_up_in_background

# Indexing imports the Functions library and the FastAPI extension (most of a cold start): no
# garbage collection meanwhile, then what they built is frozen out of later collections' way.
with importing_without_gc():
    import azure.functions as func

    from blueprints import functions, maintenance

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(functions.bp)
app.register_functions(maintenance.bp)

# The request pipeline and the OpenAI SDK load while the host finishes starting, not inside the first
# request (cold start).
warm_up_in_background()
