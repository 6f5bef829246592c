"""Which models an embedding job may use, checked when the job is submitted (not after it ran).

A job for a chat deployment used to "succeed" with every input failed after many upstream calls,
because the upstream's 400 for the wrong kind of model looks like an input error. So a job's model
must be an embedding model before anything is queued:

* ``EMBEDDING_JOBS_MODELS`` (comma-separated names as callers send them, aliases or deployments)
  lists them, when set;
* otherwise a model qualifies when its name or its deployment's name contains ``embedding``:
  Azure's embedding models are all ``text-embedding-*``, and deployments are named after their
  model unless someone chose otherwise (then set the list).

No probe call: submission stays free of upstream traffic, and a probe at submit time would cost a
request per job and fail while the upstream is down.
"""

from __future__ import annotations

from shared.config import Settings
from shared.errors import model_not_embedding
from shared.validation import resolve_model

MARKER = "embedding"


def is_embedding_model(name: str, deployment: str, settings: Settings) -> bool:
    if settings.jobs_models:
        return name in settings.jobs_models or deployment in settings.jobs_models
    return MARKER in name.lower() or MARKER in deployment.lower()


def job_deployment(name: str, settings: Settings) -> str:
    """The deployment a job for ``name`` runs on: allowed (``OPENAI_MODELS``) and an embedding model."""
    deployment = resolve_model(name, settings)
    if not is_embedding_model(name, deployment, settings):
        raise model_not_embedding(name)
    return deployment
