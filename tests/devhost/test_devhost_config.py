"""host.json, local settings and connection resolution (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.connections import (
    DEVSTORE_ACCOUNT,
    ConnectionNotConfigured,
    azurite_connection_string,
    is_development_storage,
    resolve_connection,
)
from devhost.hostjson import HostConfigError, load_host_config, parse_host_config, parse_timespan
from devhost.settings import apply_settings, read_local_settings


def test_host_json_defaults_match_the_host() -> None:
    config = parse_host_config({})
    assert config.route_prefix == "api"
    assert config.function_timeout is None
    q = config.queues
    assert (q.batch_size, q.new_batch_threshold, q.max_dequeue_count) == (16, 8, 5)
    assert (q.visibility_timeout, q.max_polling_interval, q.message_encoding) == (0.0, 60.0, "base64")


def test_host_json_values(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({
        "functionTimeout": "00:10:00",
        "extensions": {
            "http": {"routePrefix": "/gw/"},
            "queues": {"batchSize": 8, "maxDequeueCount": 2, "visibilityTimeout": "00:00:00.500",
                       "maxPollingInterval": 2000, "messageEncoding": "None"},
        },
    }))
    config = load_host_config(tmp_path)
    assert config.route_prefix == "gw"
    assert config.function_timeout == 600
    assert config.queues.new_batch_threshold == 4  # half the batch size by default
    assert config.queues.visibility_timeout_seconds == 1  # whole seconds, rounded up
    assert config.queues.max_polling_interval == 2.0  # plain numbers are milliseconds
    assert config.queues.message_encoding == "none"


def test_empty_route_prefix_and_unlimited_timeout() -> None:
    config = parse_host_config({"functionTimeout": "-1", "extensions": {"http": {"routePrefix": ""}}})
    assert config.route_prefix == ""
    assert config.function_timeout is None


@pytest.mark.parametrize(("text", "seconds"), [("00:00:01", 1), ("1.00:00:00", 86400), ("00:01:30.5", 90.5)])
def test_timespans(text: str, seconds: float) -> None:
    assert parse_timespan(text) == seconds


@pytest.mark.parametrize("queues", [{"batchSize": 64}, {"messageEncoding": "utf8"}, {"maxDequeueCount": 0}])
def test_invalid_queue_settings_are_reported(queues: dict[str, object]) -> None:
    with pytest.raises(HostConfigError):
        parse_host_config({"extensions": {"queues": queues}})


def test_settings_sample_is_the_fallback_and_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "local.settings.sample.json").write_text(json.dumps({"Values": {"A": "sample", "B": True}}))
    assert read_local_settings(tmp_path).values == {"A": "sample", "B": "true"}

    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"A": "real", "C": "file"}}))
    settings = read_local_settings(tmp_path)
    assert settings.source == tmp_path / "local.settings.json"
    environ = {"C": "env"}
    assert apply_settings(settings.values, environ) == ["A"]
    assert environ == {"A": "real", "C": "env"}


def test_missing_settings_are_empty(tmp_path: Path) -> None:
    assert read_local_settings(tmp_path).values == {}


def test_connection_string_and_development_storage() -> None:
    assert is_development_storage("UseDevelopmentStorage=true")
    conn = resolve_connection("AzureWebJobsStorage", {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert conn.connection_string == azurite_connection_string()
    assert f"QueueEndpoint=http://127.0.0.1:10001/{DEVSTORE_ACCOUNT}" in (conn.connection_string or "")


def test_connection_names_fall_back_to_the_azurewebjobs_prefix() -> None:
    conn = resolve_connection("Jobs", {"AzureWebJobsJobs": "DefaultEndpointsProtocol=https;AccountName=x"})
    assert conn.name == "AzureWebJobsJobs"


def test_identity_based_connection() -> None:
    environ = {
        "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": "client-1",
    }
    conn = resolve_connection("AzureWebJobsStorage", environ)
    assert conn.uses_identity
    assert (conn.queue_service_uri, conn.credential, conn.client_id) == (
        "https://acct.queue.core.windows.net", "managedidentity", "client-1")
    by_account = resolve_connection("Storage", {"Storage__accountName": "acct"})
    assert by_account.queue_service_uri == "https://acct.queue.core.windows.net"


def test_missing_connection_is_reported() -> None:
    with pytest.raises(ConnectionNotConfigured, match="AzureWebJobsStorage"):
        resolve_connection(None, {})
