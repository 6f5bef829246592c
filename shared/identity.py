"""Where managed identity is built: every Azure credential the app uses comes from here.

One rule, for Azure OpenAI, Storage and Application Insights alike:

* **in Azure**, ask the managed identity directly (user-assigned when a client id is known,
  system-assigned otherwise). Going straight to it skips DefaultAzureCredential's probing of other
  sources on every cold start;
* **locally** (no managed identity configured), use the developer's own login through
  DefaultAzureCredential (``az login``, ``azd auth login``, a service principal in
  ``AZURE_CLIENT_ID``/``AZURE_CLIENT_SECRET``/``AZURE_TENANT_ID``).

Each caller's configuration is turned into an :class:`Identity` by one of three small readers
(:func:`for_app`, :func:`for_storage`, :func:`for_application_insights`), and the credential is built
from the :class:`Identity` alone, so a change to how identity works is made once.

Credentials hold a token cache and a connection pool, so the process keeps **one per identity**
(:func:`credential`, :func:`sync_credential`) and every client shares it. Async credentials bind to
the event loop that first uses them; the Functions worker runs one loop per process, like the
process-wide OpenAI and storage clients that use them. Code that runs its own short-lived loops
(``asyncio.run`` per call) takes a credential of its own with :func:`new_credential` and closes it,
as do standalone :class:`shared.storage.StorageClients` and the local host's queue listeners (devhost).

``azure.identity`` is imported only when a credential is actually built, to keep cold start short.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    from azure.core.credentials_async import AsyncTokenCredential
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    # The blocking credentials this module builds (both can be closed, unlike the TokenCredential protocol).
    SyncCredential: TypeAlias = ManagedIdentityCredential | DefaultAzureCredential

# The audience of Azure OpenAI (and every Cognitive Services account) for Entra ID tokens.
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"


@dataclass(frozen=True, slots=True)
class Identity:
    """Whom to authenticate as.

    ``managed``: ask the managed identity directly (Azure). Otherwise the developer credential chain,
    whose own managed-identity step (if it is ever reached) uses ``client_id``.
    ``client_id``: the user-assigned identity's client id; ``None`` means system-assigned (managed)
    or DefaultAzureCredential's own default, ``AZURE_CLIENT_ID`` (developer chain).
    """

    managed: bool
    client_id: str | None = None


DEVELOPER = Identity(managed=False)


def for_app(client_id: str | None) -> Identity:
    """The app's identity for Azure OpenAI, from ``AZURE_CLIENT_ID`` (``Settings.client_id``).

    A client id names the user-assigned managed identity, unless ``AZURE_CLIENT_SECRET`` is set too:
    then the pair is a service-principal login, which the developer chain (EnvironmentCredential)
    handles.
    """
    if client_id and not os.environ.get("AZURE_CLIENT_SECRET"):
        return Identity(managed=True, client_id=client_id)
    return DEVELOPER


def for_storage(credential_kind: str | None, client_id: str | None) -> Identity:
    """The identity of an identity-based storage connection, read as the Functions host reads it.

    ``AzureWebJobsStorage__credential=managedidentity`` selects managed identity, with
    ``AzureWebJobsStorage__clientId`` naming a user-assigned one; anything else means the developer's
    login (locally, against a real account).
    """
    if (credential_kind or "").lower() == "managedidentity":
        return Identity(managed=True, client_id=client_id or None)
    return Identity(managed=False, client_id=client_id or None)


def for_application_insights(auth_string: str) -> Identity | None:
    """``APPLICATIONINSIGHTS_AUTHENTICATION_STRING``: ``Authorization=AAD;ClientId=<uami>`` means managed
    identity (user-assigned when ``ClientId`` is given); anything else means no Entra auth (None)."""
    parts = dict(p.split("=", 1) for p in auth_string.split(";") if "=" in p)
    if parts.get("Authorization", "").strip().upper() != "AAD":
        return None
    return Identity(managed=True, client_id=parts.get("ClientId", "").strip() or None)


def new_credential(identity: Identity) -> AsyncTokenCredential:
    """A fresh async credential that the caller owns and must close (see the module docstring)."""
    import azure.identity.aio

    built: AsyncTokenCredential = _build(identity, azure.identity.aio)
    return built


def _new_sync_credential(identity: Identity) -> SyncCredential:
    """The blocking twin of :func:`new_credential`, for SDKs that only take one (the Monitor exporter)."""
    import azure.identity

    built: SyncCredential = _build(identity, azure.identity)
    return built


def _build(identity: Identity, flavour: ModuleType) -> Any:
    """The rule itself, once for both flavours (``azure.identity`` and ``azure.identity.aio``)."""
    if identity.managed:
        return flavour.ManagedIdentityCredential(client_id=identity.client_id)
    # Never open a browser from a server process. The client id is passed only when known: passing
    # None would override DefaultAzureCredential's own default (AZURE_CLIENT_ID from the environment).
    options: dict[str, Any] = {"exclude_interactive_browser_credential": True}
    if identity.client_id:
        options["managed_identity_client_id"] = identity.client_id
    return flavour.DefaultAzureCredential(**options)


_async_credentials: dict[Identity, AsyncTokenCredential] = {}
_sync_credentials: dict[Identity, SyncCredential] = {}


def credential(identity: Identity) -> AsyncTokenCredential:
    """The process's async credential for ``identity``, built on first use and shared by every client."""
    found = _async_credentials.get(identity)
    if found is None:
        found = _async_credentials[identity] = new_credential(identity)
    return found


def sync_credential(identity: Identity) -> SyncCredential:
    """The process's blocking credential for ``identity`` (Application Insights' exporter needs one)."""
    found = _sync_credentials.get(identity)
    if found is None:
        found = _sync_credentials[identity] = _new_sync_credential(identity)
    return found


def openai_token_provider(async_credential: AsyncTokenCredential) -> Callable[[], Awaitable[str]]:
    """What the OpenAI SDK takes as ``api_key`` for Entra ID: a bearer token for Cognitive Services.

    The provider caches the token and refreshes it before it expires.
    """
    from azure.identity.aio import get_bearer_token_provider

    return get_bearer_token_provider(async_credential, COGNITIVE_SERVICES_SCOPE)


async def close_credentials() -> None:
    """Close and forget the process's shared credentials (shutdown, or tests that switch identity)."""
    async_credentials = list(_async_credentials.values())
    sync_credentials = list(_sync_credentials.values())
    _async_credentials.clear()
    _sync_credentials.clear()
    for async_credential in async_credentials:
        await async_credential.close()
    for blocking in sync_credentials:
        blocking.close()
