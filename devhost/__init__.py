"""A local stand-in for the Azure Functions host (Core Tools' ``func start``).

Core Tools cannot be installed where this project is developed and tested, so
``python -m devhost`` loads ``function_app`` the way the Python worker does and
serves its HTTP functions with uvicorn (real streaming) and its queue triggers
with pollers that follow the host's queue semantics. ``devhost.stack`` starts
the whole local stack (host, OpenAI simulator, Azurite) as subprocesses for
``make run``, the end-to-end tests and the benchmarks.

This module stays import-light on purpose: ``devhost.stack`` is imported by
test and benchmark processes that must not pay for uvicorn, Starlette or the
Azure SDKs.
"""

__all__: list[str] = []
