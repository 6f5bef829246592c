"""Which blobs a job message may name as its input: the worker reads job data and nothing else.

A queue message comes from whoever can write to the queue, and the gateway's identity can read the
whole storage account (host state, other containers). So ``input_blob`` is confined before any
read:

* the container is the jobs container (``EMBEDDING_JOBS_CONTAINER``): omitted, or named exactly;
* the name is under ``inputs/`` (where producers upload), or is the job's own claim check
  ``jobs/{this job's id}/input.jsonl`` (written by ``POST /jobs`` and ``client.submit_job``);
* the name is plain: ASCII letters, digits and ``. _ = -`` in ``/``-separated segments, no empty,
  ``.`` or ``..`` segment. That refuses ``../``, percent-encoded (``%2e%2e``) and backslash forms,
  absolute URLs (``https://other.blob...``) and anything a URL parser might reinterpret.

A reference that breaks a rule and a blob that does not exist (or that storage refuses to show)
give the same error, :data:`UNAVAILABLE`, so the worker cannot be used to learn what exists.
"""

from __future__ import annotations

import re

from shared.jobs import layout
from shared.jobs.messages import BlobRef

INPUTS_PREFIX = "inputs/"
UNAVAILABLE = ("the input blob cannot be read: it does not exist, or it is not a JSONL blob under 'inputs/' "
               "in the jobs container (see schemas/README.md)")
_SEGMENT = re.compile(r"[A-Za-z0-9._=-]{1,255}")


class InputUnavailable(LookupError):
    """The input reference is not allowed, or names no readable blob (deliberately indistinguishable)."""

    def __init__(self) -> None:
        super().__init__(UNAVAILABLE)


def _plain(name: str) -> bool:
    segments = name.split("/")
    return all(_SEGMENT.fullmatch(s) is not None and s not in (".", "..") for s in segments)


def allowed_input(ref: BlobRef, job_id: str, jobs_container: str) -> tuple[str, str]:
    """(container, name) to read for ``ref``; raises :class:`InputUnavailable` for anything else."""
    if ref.container not in (None, jobs_container) or not _plain(ref.name):
        raise InputUnavailable()
    if ref.name.startswith(INPUTS_PREFIX) and len(ref.name) > len(INPUTS_PREFIX):
        return jobs_container, ref.name
    if ref.name == layout.input_blob(job_id):
        return jobs_container, ref.name
    raise InputUnavailable()
