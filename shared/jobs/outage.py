"""Storage outages on the job routes answer 503 with ``retry-after``, not a bare 500.

The job routes read and write Table, Queue and Blob storage; when the account cannot be reached (or
answers 5xx/408/429 after the SDK's own short retries), the failure is the service's, passing, and
worth retrying, which is what 503 and ``retry-after`` tell a client. Errors that are not about
availability (a bug, a refused permission) stay 500s.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from shared.errors import GatewayError, job_storage_unavailable

RETRY_AFTER_SECONDS = 5
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
logger = logging.getLogger("gateway.jobs")


def storage_unavailable() -> GatewayError:
    return job_storage_unavailable(RETRY_AFTER_SECONDS)


def is_outage(exc: BaseException) -> bool:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, (ServiceRequestError, ServiceResponseError, TimeoutError, ConnectionError)):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in _TRANSIENT_STATUSES


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn a storage outage raised inside the block into the 503 :func:`storage_unavailable`."""
    try:
        yield
    except GatewayError:
        raise
    except Exception as exc:
        if not is_outage(exc):
            raise
        logger.warning("job storage unavailable: %s", type(exc).__name__)
        raise storage_unavailable() from exc
