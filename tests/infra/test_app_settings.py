"""The function app's settings match infra/app-settings.json, and nothing Flex rejects."""

from __future__ import annotations

import re

FUNCTION_APP = "app/function-app.bicep"
MAIN = "main.bicep"


def _settings(templates) -> dict[str, object]:
    return {templates.unquote(k): v for k, v in templates.var(FUNCTION_APP, "settings").items()}


def test_spec_is_well_formed(app_settings_spec):
    entries = app_settings_spec["settings"] + app_settings_spec["platformSettings"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), "duplicate names"
    for entry in entries:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", entry["name"]), entry["name"]
        assert isinstance(entry["setByInfra"], bool), entry["name"]
        assert entry["description"].strip(), entry["name"]
        assert entry["source"].strip(), entry["name"]
        assert set(entry["readBy"]) <= {"app", "host", "worker"}, entry["name"]


def test_the_app_setting_object_is_what_the_site_gets(templates):
    """All settings come from the one `settings` object: nothing else can add any."""
    app = templates.resource("Microsoft.Web/sites", FUNCTION_APP)
    loop = app.config["properties"]["siteConfig"]["appSettings"]
    assert loop["loop_type"] == {"type": "object", "detail": {"item_name": "setting", "object_name": "settings"}}
    assert templates.accessor_path(loop["config"]["name"]) == ["setting", "key"]
    assert templates.accessor_path(loop["config"]["value"]) == ["setting", "value"]
    for config in templates.resources("Microsoft.Web/sites/config"):
        assert config.config["name"] not in {"appsettings", "'appsettings'"}, f"{config.file}: extra appsettings"


def test_settings_are_exactly_those_documented(templates, app_settings_spec):
    expected = {
        e["name"] for e in app_settings_spec["settings"] + app_settings_spec["platformSettings"] if e["setByInfra"]
    }
    actual = set(_settings(templates))
    assert actual - expected == set(), f"set but not documented in infra/app-settings.json: {sorted(actual - expected)}"
    assert expected - actual == set(), f"documented as set by infra but missing: {sorted(expected - actual)}"


def test_settings_not_set_by_infra_stay_unset(templates, app_settings_spec):
    actual = set(_settings(templates))
    not_set = {e["name"] for e in app_settings_spec["settings"] if not e["setByInfra"]}
    assert not_set, "expected AZURE_OPENAI_API_KEY and friends in the spec"
    assert actual & not_set == set()
    assert actual & set(app_settings_spec["forbiddenByPolicy"]) == set()


def test_identity_based_host_storage(templates):
    settings = _settings(templates)
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings["AzureWebJobsStorage__blobServiceUri"] == "storageBlobEndpoint"
    assert settings["AzureWebJobsStorage__queueServiceUri"] == "storageQueueEndpoint"
    assert settings["AzureWebJobsStorage__tableServiceUri"] == "storageTableEndpoint"
    params = templates.module(FUNCTION_APP).params
    for kind in ("Blob", "Queue", "Table"):
        assert templates.accessor_path(params[f"storage{kind}Endpoint"]) == [
            "storage",
            "outputs",
            f"{kind.lower()}Endpoint",
        ]


def test_identity_and_telemetry_settings(templates):
    settings = _settings(templates)
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "applicationInsightsConnectionString"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    # Python 3.13 streams without init indexing (Azure's worker indexes the app with streaming on);
    # the setting is only for local 3.11/3.12 runs (local.settings.sample.json).
    assert templates.param_default(FUNCTION_APP, "pythonVersion") == "3.13"
    assert "PYTHON_ENABLE_INIT_INDEXING" not in settings
    params = templates.module(FUNCTION_APP).params
    assert templates.accessor_path(params["applicationInsightsConnectionString"]) == [
        "monitoring",
        "outputs",
        "connectionString",
    ]


def test_upstream_settings(templates):
    settings = _settings(templates)
    assert settings["AZURE_OPENAI_ENDPOINT"] == "openAiEndpoint"
    assert settings["OPENAI_MODELS"] == "openAiModels"
    params = templates.module(FUNCTION_APP).params
    assert templates.accessor_path(params["openAiEndpoint"]) == ["openAiAccess", "outputs", "endpoint"]
    assert params["openAiModels"] == "openAiModels"
    models = str(templates.var(MAIN, "openAiModels"))
    # Allowlist = the chat and embedding deployments (plus optional aliases).
    assert "${chatDeploymentName},${embeddingDeploymentName}" in models


def test_job_settings(templates):
    settings = _settings(templates)
    assert settings["EMBEDDING_JOBS_QUEUE"] == "jobsQueueName"
    assert settings["EMBEDDING_JOBS_CONTAINER"] == "jobsContainerName"
    assert settings["EMBEDDING_JOBS_TABLE"] == "jobsTableName"
    params = templates.module(FUNCTION_APP).params
    for name in ("jobsQueueName", "jobsContainerName", "jobsTableName"):
        assert templates.accessor_path(params[name]) == ["storage", "outputs", name]


def test_tunable_defaults_match_the_spec(templates, app_settings_spec):
    """Numbers written with string(param): the defaults must agree with the documented ones."""
    defaults = {e["name"]: e.get("default") for e in app_settings_spec["settings"]}
    settings = _settings(templates)
    pairs = {
        "MAX_REQUEST_BYTES": "maxRequestBytes",
        "REQUEST_TIMEOUT_SECONDS": "requestTimeoutSeconds",
        "RETRY_MAX_ATTEMPTS": "retryMaxAttempts",
        "CALLER_TOKENS_PER_MINUTE": "callerTokensPerMinute",
        "CALLER_OUTPUT_TOKEN_ALLOWANCE": "callerOutputTokenAllowance",
    }
    main_params = templates.module(FUNCTION_APP).params
    for setting, param in pairs.items():
        assert settings[setting] == {"function": {"type": "string", "parameters": {"value_to_convert": param}}}, setting
        assert main_params[param] == param
        for file in (FUNCTION_APP, MAIN):
            assert str(templates.param_default(file, param)) == defaults[setting], (file, param)
    # The code's own defaults (a deployment without the parameters behaves like a local run).
    from shared.config import DEFAULT_CALLER_OUTPUT_TOKEN_ALLOWANCE

    assert defaults["CALLER_OUTPUT_TOKEN_ALLOWANCE"] == str(DEFAULT_CALLER_OUTPUT_TOKEN_ALLOWANCE)
    assert defaults["CALLER_TOKENS_PER_MINUTE"] == "0"  # off
    for param in ("callerTokensPerMinute", "callerOutputTokenAllowance"):
        assert {"type": "min_value", "argument": 0} in templates.params(MAIN)[param]["decorators"]
    # Below the 230 s HTTP limit of the platform, whatever the deployer passes.
    for file in (FUNCTION_APP, MAIN):
        decorators = templates.params(file)["requestTimeoutSeconds"]["decorators"]
        assert any(d["type"] == "max_value" and d["argument"] < 230 for d in decorators), file
    for setting, param in (
        ("CORS_ALLOWED_ORIGINS", "corsAllowedOrigins"),
        ("MCP_ALLOWED_SERVERS", "mcpAllowedServers"),
    ):
        assert settings[setting] == param
        assert templates.param_default(MAIN, param) == defaults[setting] == ""
    assert templates.param_default(MAIN, "logContent") is False
    assert templates.param_default(FUNCTION_APP, "logContent") is False
    assert settings["LOG_CONTENT"] == {
        "operator": {
            "type": "conditional",
            "operands": {"condition": "logContent", "true_value": "true", "false_value": "false"},
        }
    }
