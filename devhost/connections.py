"""Resolve a trigger's ``connection`` setting the way the Functions host does.

A connection named ``X`` is either a connection string in setting ``X`` (or
``AzureWebJobsX``), ``UseDevelopmentStorage=true`` for Azurite, or an
identity-based connection given as ``X__queueServiceUri`` /
``X__serviceUri`` / ``X__accountName`` with optional ``X__credential`` and
``X__clientId``. Keeping this in one place lets the local host and the stack
agree on what "the storage account" is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared import identity

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueServiceClient

# Azurite's fixed development account. This key is published in Azurite's
# documentation and only ever unlocks the local emulator.
DEVSTORE_ACCOUNT = "devstoreaccount1"
DEVSTORE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_AZURITE_PORTS = (10000, 10001, 10002)


class ConnectionNotConfigured(LookupError):
    """No setting provides the named connection."""


def azurite_connection_string(
    ports: tuple[int, int, int] = DEFAULT_AZURITE_PORTS, host: str = "127.0.0.1"
) -> str:
    """An explicit connection string for an Azurite on the given blob/queue/table ports."""
    blob, queue, table = ports
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={DEVSTORE_ACCOUNT};AccountKey={DEVSTORE_KEY};"
        f"BlobEndpoint=http://{host}:{blob}/{DEVSTORE_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue}/{DEVSTORE_ACCOUNT};"
        f"TableEndpoint=http://{host}:{table}/{DEVSTORE_ACCOUNT};"
    )


def _parse_connection_string(value: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in value.split(";"):
        if "=" in item:
            key, _, val = item.partition("=")
            parts[key.strip().lower()] = val.strip()
    return parts


def is_development_storage(value: str | None) -> bool:
    """True for ``UseDevelopmentStorage=true`` (the Azurite shorthand)."""
    if not value:
        return False
    return _parse_connection_string(value).get("usedevelopmentstorage", "").lower() == "true"


def expand_connection_string(value: str) -> str:
    """Replace the Azurite shorthand by an explicit string the SDKs understand."""
    if not is_development_storage(value):
        return value
    proxy = _parse_connection_string(value).get("developmentstorageproxyuri")
    host = "127.0.0.1"
    if proxy:
        host = proxy.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return azurite_connection_string(DEFAULT_AZURITE_PORTS, host)


@dataclass(frozen=True)
class StorageConnection:
    """A resolved connection: a connection string, or a service URI plus identity."""

    name: str
    connection_string: str | None = None
    queue_service_uri: str | None = None
    credential: str | None = None
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None


def _lookup(environ: Mapping[str, str], prefix: str, key: str) -> str | None:
    for sep in ("__", ":"):
        value = environ.get(f"{prefix}{sep}{key}")
        if value:
            return value
    return None


def resolve_connection(name: str | None, environ: Mapping[str, str]) -> StorageConnection:
    """Find the settings behind a trigger's ``connection`` name."""
    name = name or "AzureWebJobsStorage"
    candidates = [name] if name.startswith("AzureWebJobs") else [name, f"AzureWebJobs{name}"]
    for candidate in candidates:
        value = environ.get(candidate)
        if value:
            return StorageConnection(name=candidate, connection_string=expand_connection_string(value))
        uri = _lookup(environ, candidate, "queueServiceUri") or _lookup(environ, candidate, "serviceUri")
        account = _lookup(environ, candidate, "accountName")
        if not uri and account:
            uri = f"https://{account}.queue.core.windows.net"
        if uri:
            return StorageConnection(
                name=candidate,
                queue_service_uri=uri,
                credential=(_lookup(environ, candidate, "credential") or "").lower() or None,
                client_id=_lookup(environ, candidate, "clientId"),
            )
    raise ConnectionNotConfigured(
        f"storage connection {name!r} is not configured: set {name} to a connection string "
        f"(UseDevelopmentStorage=true for Azurite) or {name}__queueServiceUri for an identity-based connection"
    )


def queue_service_client(conn: StorageConnection, **client_kwargs: Any) -> tuple[QueueServiceClient, Any | None]:
    """An async queue service client and the credential to close with it (if any)."""
    from azure.storage.queue.aio import QueueServiceClient

    if conn.connection_string is not None:
        return QueueServiceClient.from_connection_string(conn.connection_string, **client_kwargs), None
    assert conn.queue_service_uri is not None
    # The app's own rule for identity-based storage (shared/identity.py). The host owns this
    # credential (its listeners outlive any one invocation) and closes it when it stops.
    credential = identity.new_credential(identity.for_storage(conn.credential, conn.client_id))
    return QueueServiceClient(conn.queue_service_uri, credential=credential, **client_kwargs), credential
