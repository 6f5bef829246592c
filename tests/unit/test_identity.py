"""shared.identity: the one rule for Azure credentials, and one credential per identity per process.

Fake environments only: building a credential does not touch the network (tokens are fetched on
first use), so these tests check which credential each configuration gets and who shares it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential as SyncManagedIdentityCredential
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

from shared import clients, config, identity, storage, telemetry
from shared.identity import DEVELOPER, Identity
from shared.lazy import forget_process_state
from shared.storage import StorageClients, StorageConfig

CLIENT_ID = "00000000-0000-0000-0000-000000000001"
OTHER_CLIENT_ID = "00000000-0000-0000-0000-000000000002"
APPINSIGHTS = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
IDENTITY_STORAGE = {
    "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
    "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
    "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": CLIENT_ID,
}


class ClosableCredential:
    """Stands in for an async credential where a test needs to see whether it was closed."""

    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
async def fresh_process(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Each test starts as a new worker process would: no settings, clients or credentials cached."""
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT",
                 "OPENAI_BACKENDS", "AzureWebJobsStorage", "APPLICATIONINSIGHTS_CONNECTION_STRING",
                 "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"):
        monkeypatch.delenv(name, raising=False)
    await _forget_process_state()
    yield
    await _forget_process_state()


async def _forget_process_state() -> None:
    await clients.close_clients()
    forget_process_state()
    await identity.close_credentials()


# The rule: managed identity in Azure, developer credentials locally.

def test_client_id_without_secret_is_the_user_assigned_managed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    assert identity.for_app(CLIENT_ID) == Identity(managed=True, client_id=CLIENT_ID)
    assert type(identity.new_credential(identity.for_app(CLIENT_ID))) is ManagedIdentityCredential


def test_client_id_with_secret_is_a_service_principal_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "secret")
    assert identity.for_app(CLIENT_ID) == DEVELOPER
    assert type(identity.new_credential(DEVELOPER)) is DefaultAzureCredential


def test_no_client_id_means_developer_credentials() -> None:
    assert identity.for_app(None) == DEVELOPER


def test_storage_managedidentity_with_client_id_is_that_identity() -> None:
    config = StorageConfig.from_env(IDENTITY_STORAGE)
    assert config.identity == Identity(managed=True, client_id=CLIENT_ID)
    assert type(identity.new_credential(config.identity)) is ManagedIdentityCredential


def test_storage_managedidentity_without_client_id_is_system_assigned() -> None:
    env = {k: v for k, v in IDENTITY_STORAGE.items() if not k.endswith("clientId")}
    assert StorageConfig.from_env(env).identity == Identity(managed=True, client_id=None)


def test_storage_without_credential_setting_uses_developer_credentials() -> None:
    config = StorageConfig.from_env({"AzureWebJobsStorage__accountName": "acct"})
    assert config.identity == DEVELOPER
    assert type(identity.new_credential(config.identity)) is DefaultAzureCredential
    with_client = StorageConfig.from_env({"AzureWebJobsStorage__accountName": "acct",
                                          "AzureWebJobsStorage__clientId": CLIENT_ID})
    assert with_client.identity == Identity(managed=False, client_id=CLIENT_ID)


@pytest.mark.parametrize(("auth", "expected"), [
    (f"Authorization=AAD;ClientId={CLIENT_ID}", Identity(managed=True, client_id=CLIENT_ID)),
    (f"ClientId={CLIENT_ID};Authorization=aad", Identity(managed=True, client_id=CLIENT_ID)),
    ("Authorization=AAD", Identity(managed=True, client_id=None)),
    ("", None),
    (f"ClientId={CLIENT_ID}", None),
])
def test_application_insights_auth_string(auth: str, expected: Identity | None) -> None:
    assert identity.for_application_insights(auth) == expected


def test_sync_credential_for_the_exporter_is_the_blocking_managed_identity() -> None:
    assert type(identity.sync_credential(Identity(managed=True, client_id=CLIENT_ID))) is SyncManagedIdentityCredential


# One credential per identity per process.

def test_same_identity_gives_the_same_credential() -> None:
    first = identity.credential(Identity(managed=True, client_id=CLIENT_ID))
    assert identity.credential(Identity(managed=True, client_id=CLIENT_ID)) is first
    assert identity.sync_credential(DEVELOPER) is identity.sync_credential(DEVELOPER)


def test_two_client_ids_give_two_credentials() -> None:
    first = identity.credential(Identity(managed=True, client_id=CLIENT_ID))
    second = identity.credential(Identity(managed=True, client_id=OTHER_CLIENT_ID))
    assert first is not second
    assert identity.credential(Identity(managed=False, client_id=CLIENT_ID)) not in (first, second)


async def test_close_credentials_closes_and_forgets(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[ClosableCredential] = []

    def fake_new_credential(_: Identity) -> Any:
        built.append(ClosableCredential())
        return built[-1]

    monkeypatch.setattr(identity, "new_credential", fake_new_credential)
    first = identity.credential(DEVELOPER)
    await identity.close_credentials()
    assert built[0].closed
    assert identity.credential(DEVELOPER) is not first


# Storage, the OpenAI clients and telemetry share it.

def _count_credentials_built(monkeypatch: pytest.MonkeyPatch) -> list[Identity]:
    built: list[Identity] = []
    real = identity.new_credential

    def counting(who: Identity) -> Any:
        built.append(who)
        return real(who)

    monkeypatch.setattr(identity, "new_credential", counting)
    return built


async def test_openai_clients_and_storage_share_one_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("OPENAI_BACKENDS", '[{"name": "a", "base_url": "http://127.0.0.1:9/v1"},'
                                          ' {"name": "b", "base_url": "http://127.0.0.1:8/v1"}]')
    for key, value in IDENTITY_STORAGE.items():
        monkeypatch.setenv(key, value)
    built = _count_credentials_built(monkeypatch)

    settings = config.get_settings()
    for backend in settings.backends:
        clients.get_upstream(backend)
    blob_credential = storage.get_storage().blob.credential
    queue_credential = storage.get_storage().queue.credential

    assert built == [Identity(managed=True, client_id=CLIENT_ID)]
    shared = identity.credential(Identity(managed=True, client_id=CLIENT_ID))
    assert blob_credential is shared
    assert queue_credential is shared
    await storage.get_storage().close()


async def test_process_storage_does_not_close_the_shared_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "new_credential", lambda _: ClosableCredential())
    process_wide = StorageClients(StorageConfig.from_env(IDENTITY_STORAGE), shared_credential=True)
    shared = process_wide._credential_for_uri()
    await process_wide.close()
    assert not shared.closed  # type: ignore[attr-defined]  # the OpenAI clients still use it


async def test_standalone_storage_owns_and_closes_its_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "new_credential", lambda _: ClosableCredential())
    tool = StorageClients(StorageConfig.from_env(IDENTITY_STORAGE))
    own = tool._credential_for_uri()
    assert own is not identity.credential(Identity(managed=True, client_id=CLIENT_ID))
    await tool.close()
    assert own.closed  # type: ignore[attr-defined]


def test_telemetry_uses_the_identity_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.monitor.opentelemetry

    received: dict[str, Any] = {}
    monkeypatch.setattr(azure.monitor.opentelemetry, "configure_azure_monitor", lambda **kw: received.update(kw))
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", APPINSIGHTS)
    monkeypatch.setenv("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", f"Authorization=AAD;ClientId={CLIENT_ID}")

    assert telemetry.tracer() is not None
    assert received["credential"] is identity.sync_credential(identity.for_app(CLIENT_ID))


def test_telemetry_without_entra_auth_passes_no_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.monitor.opentelemetry

    received: dict[str, Any] = {}
    monkeypatch.setattr(azure.monitor.opentelemetry, "configure_azure_monitor", lambda **kw: received.update(kw))
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", APPINSIGHTS)

    telemetry.tracer()
    assert received["credential"] is None


async def test_devhost_builds_its_own_credential_with_the_same_rule() -> None:
    from devhost.connections import queue_service_client, resolve_connection

    conn = resolve_connection("AzureWebJobsStorage", IDENTITY_STORAGE)
    client, credential = queue_service_client(conn)
    assert type(credential) is ManagedIdentityCredential
    assert credential is not identity.credential(Identity(managed=True, client_id=CLIENT_ID))
    await client.close()
    await credential.close()
