"""Reading the host's storage connection: connection strings, the Azurite shorthand, identity."""

from __future__ import annotations

import pytest

from shared.identity import DEVELOPER, Identity
from shared.storage import DEVELOPMENT_STORAGE, StorageConfig, StorageNotConfigured


def test_development_storage_is_canonicalised() -> None:
    config = StorageConfig.from_env({"AzureWebJobsStorage": "usedevelopmentstorage=TRUE"})
    assert config.connection_string == DEVELOPMENT_STORAGE


def test_every_sdk_accepts_the_shorthand() -> None:
    from azure.data.tables.aio import TableServiceClient
    from azure.storage.blob.aio import BlobServiceClient
    from azure.storage.queue.aio import QueueServiceClient

    assert BlobServiceClient.from_connection_string(DEVELOPMENT_STORAGE).url.startswith("http://127.0.0.1:10000/")
    assert QueueServiceClient.from_connection_string(DEVELOPMENT_STORAGE).url.startswith("http://127.0.0.1:10001/")
    assert TableServiceClient.from_connection_string(DEVELOPMENT_STORAGE).url.startswith("http://127.0.0.1:10002/")


def test_identity_based_connection() -> None:
    config = StorageConfig.from_env({
        "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
        "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-000000000001",
    })
    assert config.connection_string is None
    assert config.service_uri("table") == "https://acct.table.core.windows.net"
    # Which credential each identity gets is tested in tests/unit/test_identity.py.
    assert config.identity == Identity(managed=True, client_id="00000000-0000-0000-0000-000000000001")


def test_account_name_gives_all_three_uris() -> None:
    config = StorageConfig.from_env({"AzureWebJobsStorage__accountName": "acct"})
    assert config.service_uri("queue") == "https://acct.queue.core.windows.net"
    assert config.identity == DEVELOPER


def test_missing_connection_is_explained() -> None:
    with pytest.raises(StorageNotConfigured, match="AzureWebJobsStorage"):
        StorageConfig.from_env({})
