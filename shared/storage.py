"""Blob, queue and table clients for the host's storage connection (``AzureWebJobsStorage``).

The embedding-job pipeline keeps its state in the same account the Functions host uses for its
triggers, so there is one place to configure and one identity to grant roles to. The connection is
read the way the host reads it:

* a connection string in ``AzureWebJobsStorage`` (locally ``UseDevelopmentStorage=true``: Azurite on
  127.0.0.1:10000/10001/10002 with its published development account), or
* identity-based: ``AzureWebJobsStorage__blobServiceUri`` / ``__queueServiceUri`` /
  ``__tableServiceUri`` (or ``__accountName``), with ``__credential=managedidentity`` and
  ``__clientId`` for a user-assigned identity.

Clients are async, built lazily once per process and shared by every invocation (connection pools
and token caches are expensive; cold start is not the place to pay for them). The Azure SDK modules
are imported inside the builders so that importing this module costs nothing.

This module does not read :class:`shared.config.Settings`: the producer-side helper
(:mod:`shared.jobs.client`) runs in other back ends that have no upstream configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shared import identity
from shared.identity import Identity
from shared.lazy import process_wide

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.data.tables.aio import TableServiceClient
    from azure.storage.blob.aio import BlobServiceClient
    from azure.storage.queue.aio import QueueServiceClient

DEFAULT_CONNECTION = "AzureWebJobsStorage"
# The form every storage SDK recognises (the table SDK compares it case-insensitively but whole).
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"

Service = Literal["blob", "queue", "table"]


class StorageNotConfigured(LookupError):
    """No setting describes the storage connection."""


def _parse_connection_string(value: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in value.split(";"):
        key, sep, val = item.partition("=")
        if sep:
            parts[key.strip().lower()] = val.strip()
    return parts


def is_development_storage(value: str) -> bool:
    return _parse_connection_string(value).get("usedevelopmentstorage", "").lower() == "true"


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where the storage account is and how to authenticate to it."""

    connection_string: str | None = None
    blob_uri: str | None = None
    queue_uri: str | None = None
    table_uri: str | None = None
    credential_kind: str | None = None
    client_id: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, connection: str = DEFAULT_CONNECTION) -> StorageConfig:
        """Resolve ``connection`` like the Functions host does (connection string first, then identity)."""
        env = os.environ if env is None else env
        value = env.get(connection, "").strip()
        if value:
            return cls.from_connection_string(value)

        def setting(key: str) -> str | None:
            found = env.get(f"{connection}__{key}", "").strip() or env.get(f"{connection}:{key}", "").strip()
            return found or None

        account = setting("accountName")
        uris = {kind: setting(f"{kind}ServiceUri")
                or (f"https://{account}.{kind}.core.windows.net" if account else None)
                for kind in ("blob", "queue", "table")}
        if not any(uris.values()):
            raise StorageNotConfigured(
                f"Storage connection {connection!r} is not configured: set {connection} to a connection string "
                f"(UseDevelopmentStorage=true for Azurite) or {connection}__blobServiceUri, __queueServiceUri and "
                f"__tableServiceUri for an identity-based connection."
            )
        return cls(blob_uri=uris["blob"], queue_uri=uris["queue"], table_uri=uris["table"],
                   credential_kind=(setting("credential") or "").lower() or None, client_id=setting("clientId"))

    @classmethod
    def from_connection_string(cls, value: str) -> StorageConfig:
        # Any spelling of the Azurite shorthand becomes the canonical one all three SDKs expand.
        return cls(connection_string=DEVELOPMENT_STORAGE if is_development_storage(value) else value)

    @property
    def identity(self) -> Identity:
        """Whom an identity-based connection authenticates as (the rule lives in :mod:`shared.identity`)."""
        return identity.for_storage(self.credential_kind, self.client_id)

    def service_uri(self, service: Service) -> str:
        uri = {"blob": self.blob_uri, "queue": self.queue_uri, "table": self.table_uri}[service]
        if not uri:
            raise StorageNotConfigured(f"No {service} service URI is configured for identity-based storage access.")
        return uri


class StorageClients:
    """The three service clients for one storage account, each built on first use.

    Async SDK clients bind to the event loop that first uses them; the Functions worker runs one
    loop per process, so one instance per process is right there. Tools that run several loops
    (``asyncio.run`` per call) build their own instance and ``close`` it.

    ``shared_credential``: use the process's credential for the connection's identity (the one the
    OpenAI clients use too, see :mod:`shared.identity`), as the process-wide instance does. Otherwise
    the instance builds its own credential and closes it with the clients, so that it never outlives
    the event loop it was used on.
    """

    def __init__(self, config: StorageConfig, *, shared_credential: bool = False) -> None:
        self.config = config
        self.shared_credential = shared_credential
        self._credential: AsyncTokenCredential | None = None
        self._blob: BlobServiceClient | None = None
        self._queue: QueueServiceClient | None = None
        self._table: TableServiceClient | None = None

    def _credential_for_uri(self) -> AsyncTokenCredential:
        if self._credential is None:
            who = self.config.identity
            self._credential = identity.credential(who) if self.shared_credential else identity.new_credential(who)
        return self._credential

    def _build(self, service: Service, client_class: Any) -> Any:
        """A service client from the connection string, or from its URI and the identity."""
        conn = self.config.connection_string
        if conn:
            return client_class.from_connection_string(conn, **_client_options())
        return client_class(self.config.service_uri(service), credential=self._credential_for_uri(),
                            **_client_options())

    @property
    def blob(self) -> BlobServiceClient:
        if self._blob is None:
            from azure.storage.blob.aio import BlobServiceClient

            self._blob = self._build("blob", BlobServiceClient)
        return self._blob

    @property
    def queue(self) -> QueueServiceClient:
        if self._queue is None:
            from azure.storage.queue.aio import QueueServiceClient

            self._queue = self._build("queue", QueueServiceClient)
        return self._queue

    @property
    def table(self) -> TableServiceClient:
        if self._table is None:
            from azure.data.tables.aio import TableServiceClient

            self._table = self._build("table", TableServiceClient)
        return self._table

    async def close(self) -> None:
        owned_credential = None if self.shared_credential else self._credential
        for client in (self._blob, self._queue, self._table, owned_credential):
            if client is not None:
                await client.close()
        self._blob = self._queue = self._table = None
        self._credential = None


def _client_options() -> dict[str, Any]:
    # The SDK default retries for ~minutes with exponential waits; the queue's own redelivery is
    # our retry for storage, so fail fast and let the message come back.
    return {"retry_total": 3, "retry_backoff_factor": 0.4, "connection_timeout": 10}


@process_wide
def get_storage() -> StorageClients:
    """The process's storage clients for ``AzureWebJobsStorage``."""
    return StorageClients(StorageConfig.from_env(), shared_credential=True)
