"""Settings parsing: upstream selection, allowlists, numbers."""

from __future__ import annotations

import pytest

from shared.config import ConfigurationError, Settings, parse_models


def test_azure_endpoint_gets_the_v1_path() -> None:
    settings = Settings.from_env({"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/"})
    assert settings.upstream_base_url == "https://res.openai.azure.com/openai/v1/"
    assert settings.api_key is None  # keyless: Entra ID


def test_base_url_is_used_as_is_and_key_is_optional() -> None:
    settings = Settings.from_env({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "AZURE_OPENAI_API_KEY": "k"})
    assert settings.upstream_base_url == "http://127.0.0.1:9/v1/"
    assert settings.api_key == "k"


def test_endpoint_wins_over_base_url() -> None:
    settings = Settings.from_env({"AZURE_OPENAI_ENDPOINT": "https://a.openai.azure.com",
                                  "OPENAI_BASE_URL": "http://b/v1"})
    assert settings.upstream_base_url.startswith("https://a.openai.azure.com")


def test_no_upstream_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        Settings.from_env({"AZURE_OPENAI_ENDPOINT": "  "})


def test_models_and_aliases() -> None:
    assert parse_models(" gpt-4o , chat = gpt-4o ,emb=text-embedding-3-small") == {
        "gpt-4o": "gpt-4o", "chat": "gpt-4o", "emb": "text-embedding-3-small"}
    with pytest.raises(ConfigurationError):
        parse_models("alias=")


def test_lists_and_numbers() -> None:
    settings = Settings.from_env({
        "OPENAI_BASE_URL": "http://x/v1", "CORS_ALLOWED_ORIGINS": "https://a.test/, https://b.test",
        "MCP_ALLOWED_SERVERS": "https://m.test/api", "MAX_REQUEST_BYTES": "1024", "REQUEST_TIMEOUT_SECONDS": "5.5",
        "LOG_CONTENT": "true",
    })
    assert settings.cors_allowed_origins == {"https://a.test", "https://b.test"}
    assert settings.mcp_allowed_servers == ("https://m.test/api",)
    assert (settings.max_request_bytes, settings.request_timeout_seconds, settings.log_content) == (1024, 5.5, True)
    with pytest.raises(ConfigurationError, match="MAX_REQUEST_BYTES"):
        Settings.from_env({"OPENAI_BASE_URL": "http://x/v1", "MAX_REQUEST_BYTES": "lots"})


def test_caller_limit_is_off_unless_positive() -> None:
    base = {"OPENAI_BASE_URL": "http://x/v1"}
    assert Settings.from_env(base).caller_tokens_per_minute == 0
    assert Settings.from_env({**base, "CALLER_TOKENS_PER_MINUTE": "0"}).caller_tokens_per_minute == 0
    assert Settings.from_env({**base, "CALLER_TOKENS_PER_MINUTE": "5000"}).caller_tokens_per_minute == 5000
    with pytest.raises(ConfigurationError):
        Settings.from_env({**base, "CALLER_TOKENS_PER_MINUTE": "-5"})
