"""Security and wiring properties of the Bicep templates, read from the parsed templates.

The templates are parsed with pycep-parser (see conftest.py). pycep renders identifiers
and string literals alike as plain strings, so a value like "identityClientId" below means
"the parameter identityClientId" and 'Disabled' means the literal; booleans and numbers
keep their types.
"""

from __future__ import annotations

import re

import pytest

MAIN = "main.bicep"
FUNCTION_APP = "app/function-app.bicep"
AUTH = "app/function-app-auth.bicep"
OPENAI = "app/openai.bicep"
OPENAI_ACCESS = "app/openai-access.bicep"
STORAGE = "core/storage.bicep"
MONITORING = "core/monitoring.bicep"
IDENTITY = "core/identity.bicep"
RBAC = "core/rbac.bicep"

OPENAI_ACCOUNT = "Microsoft.CognitiveServices/accounts"
STORAGE_ACCOUNT = "Microsoft.Storage/storageAccounts"
APP_INSIGHTS = "Microsoft.Insights/components"

# role definition id -> (resource type it must be assigned on, role name)
REQUIRED_ROLES = {
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd": (OPENAI_ACCOUNT, "Cognitive Services OpenAI User"),
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": (STORAGE_ACCOUNT, "Storage Blob Data Owner"),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": (STORAGE_ACCOUNT, "Storage Queue Data Contributor"),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": (STORAGE_ACCOUNT, "Storage Table Data Contributor"),
    "3913510d-42f4-4e42-8a64-420c390055eb": (APP_INSIGHTS, "Monitoring Metrics Publisher"),
}

SECRET_PATTERNS = [
    r"listKeys\s*\(",
    r"listConnectionStrings\s*\(",
    r"listAccountSas\s*\(",
    r"listServiceSas\s*\(",
    r"listSecrets\s*\(",
    r"AccountKey\s*=",
    r"SharedAccessSignature\s*=",
    r"SharedAccessKey\s*=",
    r"DefaultEndpointsProtocol\s*=",
    r"\.primaryKey\b",
    r"\.secondaryKey\b",
    r"\bkey1\b",
    r"\bkey2\b",
]


def _code_lines(text: str) -> list[str]:
    """Bicep lines with // comments removed (good enough: no '//' inside our strings but URLs)."""
    lines = []
    for line in text.splitlines():
        stripped = re.sub(r"(?<!:)//.*$", "", line)
        if stripped.strip():
            lines.append(stripped)
    return lines


# ---- parsing ------------------------------------------------------------------------------


def test_all_templates_parse(templates):
    assert templates.errors == {}, templates.errors
    expected = {MAIN, FUNCTION_APP, AUTH, OPENAI, OPENAI_ACCESS, STORAGE, MONITORING, IDENTITY, RBAC}
    assert expected <= set(templates.files), sorted(templates.files)


def test_every_module_path_exists(templates):
    for call in templates.modules():
        assert call.path in templates.files, f"{call.file}: module {call.symbol} -> missing {call.path}"


def test_no_registry_modules(templates):
    for rel in templates.files:
        assert not re.search(r"module\s+\w+\s+'(br|ts)[:/]", templates.text(rel)), f"{rel} uses a registry module"


# ---- main.bicep ---------------------------------------------------------------------------


def test_main_is_subscription_scoped_and_creates_the_resource_group(templates):
    assert templates.files[MAIN]["globals"]["scope"]["value"] == "subscription"
    rg = templates.resource("Microsoft.Resources/resourceGroups", MAIN)
    name = rg.config["name"]
    name = templates.var(MAIN, name) if name in templates.variables(MAIN) else name
    assert name == "rg-${environmentName}"
    tags = templates.var(MAIN, rg.config["tags"])
    assert {templates.unquote(k): v for k, v in tags.items()} == {"azd-env-name": "environmentName"}
    for call in templates.modules(file=MAIN):
        if call.symbol != "openAiAccess":  # scoped to the OpenAI account's resource group
            assert call.config.get("scope") == rg.symbol, f"module {call.symbol} is not deployed into the new RG"


REQUIRED_OUTPUTS = {
    "AZURE_LOCATION",
    "AZURE_TENANT_ID",
    "AZURE_RESOURCE_GROUP",
    "AZURE_FUNCTION_APP_NAME",
    "AZURE_FUNCTION_URL",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_CHAT_DEPLOYMENT",
    "AZURE_OPENAI_EMBEDDING_DEPLOYMENT",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
}


def test_main_outputs_what_azd_needs(templates):
    outputs = templates.outputs(MAIN)
    assert set(outputs) >= REQUIRED_OUTPUTS, sorted(REQUIRED_OUTPUTS - set(outputs))
    for name, output in outputs.items():
        assert not re.search(r"KEY|SECRET|PASSWORD|TOKEN", name), f"output {name} looks like a secret"
        assert not any(d["type"] == "secure" for d in output["decorators"]), f"secure output {name}"
    assert templates.accessor_path(outputs["AZURE_OPENAI_ENDPOINT"]["value"]) == ["openAiAccess", "outputs", "endpoint"]
    assert templates.accessor_path(outputs["AZURE_FUNCTION_APP_NAME"]["value"]) == ["functionApp", "outputs", "name"]


# ---- no keys, no connection strings with secrets -----------------------------------------


def test_no_keys_or_secret_connection_strings_anywhere_in_infra(infra_root):
    offenders = []
    for path in sorted((infra_root / "infra").rglob("*")):
        if not path.is_file() or path.suffix not in {".bicep", ".json", ".bicepparam", ".sh", ".md"}:
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in SECRET_PATTERNS:
            for match in re.finditer(pattern, text, flags=re.IGNORECASE):
                offenders.append(f"{path.relative_to(infra_root)}: {match.group(0)!r}")
    assert not offenders, "key material in infra:\n" + "\n".join(offenders)


def test_no_secure_params_are_needed(templates):
    """Keyless design: nothing takes a secret as input."""
    for rel in templates.files:
        for name, param in templates.params(rel).items():
            assert not any(d["type"] == "secure" for d in param["decorators"]), f"{rel}: @secure() param {name}"


# ---- storage --------------------------------------------------------------------------------


def test_storage_account_is_keyless_and_locked_down(templates):
    storage = templates.resource(STORAGE_ACCOUNT, STORAGE)
    props = storage.config["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True


def test_blob_soft_delete(templates):
    blob = templates.resource("Microsoft.Storage/storageAccounts/blobServices", STORAGE)
    assert templates.get(blob.config, "properties.deleteRetentionPolicy.enabled") is True
    assert templates.get(blob.config, "properties.containerDeleteRetentionPolicy.enabled") is True


def test_storage_has_the_job_queue_poison_queue_container_and_table(templates, app_settings_spec):
    kinds = {
        "Microsoft.Storage/storageAccounts/blobServices/containers": {"deploymentContainerName", "jobsContainerName"},
        "Microsoft.Storage/storageAccounts/queueServices/queues": {"jobsQueueName", "jobsPoisonQueueName"},
        "Microsoft.Storage/storageAccounts/tableServices/tables": {"jobsTableName", "usageTableName"},
    }
    for type_, names in kinds.items():
        found = {r.config["name"] for r in templates.resources(type_, STORAGE)}
        assert found == names, (type_, found)
        for name in names:
            assert name in templates.params(STORAGE)

    defaults = {s["name"]: s.get("default") for s in app_settings_spec["settings"]}
    params = templates.module(STORAGE).params
    resolved = {k: templates.var(MAIN, v) for k, v in params.items() if k.startswith(("jobs", "usage"))}
    queue = defaults["EMBEDDING_JOBS_QUEUE"]
    assert resolved["jobsQueueName"] == queue == "embedding-jobs"
    assert resolved["jobsPoisonQueueName"] == "${jobsQueueName}-poison"  # -> embedding-jobs-poison
    assert resolved["jobsContainerName"] == defaults["EMBEDDING_JOBS_CONTAINER"] == "embedding-jobs"
    assert resolved["jobsTableName"] == defaults["EMBEDDING_JOBS_TABLE"] == "embeddingjobs"
    from shared.quota import TABLE

    assert resolved["usageTableName"] == TABLE
    assert params["deploymentContainerName"] in templates.variables(MAIN)


# ---- Azure OpenAI ------------------------------------------------------------------------


def test_openai_account_is_keyless(templates):
    account = templates.resource(OPENAI_ACCOUNT, OPENAI)
    props = account.config["properties"]
    assert props["disableLocalAuth"] is True
    assert props["customSubDomainName"] == "name"  # the account name: required for Entra ID auth
    assert props["publicNetworkAccess"] == "publicNetworkAccess"
    assert set(templates.params(OPENAI)["kind"]["decorators"][-1]["argument"]) <= {"OpenAI", "AIServices"}


def test_openai_deployments_are_parameterised_and_sequential(templates):
    deployments = {r.symbol: r for r in templates.resources("Microsoft.CognitiveServices/accounts/deployments", OPENAI)}
    assert set(deployments) == {"chatDeployment", "embeddingDeployment"}
    for prefix, res in (("chat", deployments["chatDeployment"]), ("embedding", deployments["embeddingDeployment"])):
        cfg = res.config
        assert cfg["name"] == f"{prefix}DeploymentName"
        assert cfg["sku"] == {"name": f"{prefix}SkuName", "capacity": f"{prefix}Capacity"}
        assert templates.get(cfg, "properties.model.name") == f"{prefix}ModelName"
        assert templates.get(cfg, "properties.model.version") == f"{prefix}ModelVersion"
    # Azure rejects parallel deployment operations on one account.
    assert deployments["embeddingDeployment"].config.get("dependsOn") == ["chatDeployment"]


def test_openai_can_use_an_existing_account(templates):
    create = templates.module(OPENAI)
    assert create.condition == {"operator": {"type": "not", "operands": {"bool_value": "useExistingOpenAi"}}}
    assert templates.var(MAIN, "useExistingOpenAi") == {
        "operator": {
            "type": "not",
            "operands": {
                "bool_value": {
                    "function": {"type": "empty", "parameters": {"item_to_test": "existingOpenAiAccountName"}}
                }
            },
        }
    }
    access = templates.module(OPENAI_ACCESS)
    assert access.condition is None
    assert templates.function_call(access.config["scope"]) == (
        "resource_group",
        {"resource_group_name": "openAiResourceGroupName", "subscription_id": None},
    )
    assert access.params["accountName"] == create.params["name"] == "openAiAccountName"
    assert set(access.config["dependsOn"]) >= {create.symbol}
    account = templates.resource(OPENAI_ACCOUNT, OPENAI_ACCESS, existing=True)
    assert account.config["name"] == "accountName"
    endpoint = templates.outputs(OPENAI_ACCESS)["endpoint"]["value"]
    assert endpoint == "https://${account.properties.customSubDomainName}.openai.azure.com/"


# ---- monitoring ----------------------------------------------------------------------------


def test_application_insights_is_entra_only(templates):
    appi = templates.resource(APP_INSIGHTS, MONITORING)
    assert templates.get(appi.config, "properties.DisableLocalAuth", ignore_case=True) is True
    assert templates.get(appi.config, "properties.WorkspaceResourceId", ignore_case=True) is not None


def test_log_analytics_workspace_exists(templates):
    templates.resource("Microsoft.OperationalInsights/workspaces", MONITORING)


# ---- identity and roles --------------------------------------------------------------------


def _role_assignments(templates):
    """(file, symbol, role id, scope resource type, principal param, principal type, condition)."""
    found = []
    for ra in templates.resources("Microsoft.Authorization/roleAssignments"):
        variables = templates.variables(ra.file)
        props = ra.config["properties"]
        fn, args = templates.function_call(props["roleDefinitionId"])
        assert fn == "subscription_resource_id", f"{ra.file}:{ra.symbol} roleDefinitionId"
        assert args["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        role_ref = args["resource_name_1"]
        role_id = variables[role_ref]["value"] if role_ref in variables else role_ref
        scope_symbol = ra.config["scope"]
        scopes = [r for r in templates.resources(file=ra.file) if r.symbol == scope_symbol]
        assert len(scopes) == 1, f"{ra.file}:{ra.symbol} scope {scope_symbol!r} is not a resource of the file"
        # guid(scope.id, principalId, roleId): stable, unique per scope/principal/role
        fn, guid_args = templates.function_call(ra.config["name"])
        assert fn == "guid", f"{ra.file}:{ra.symbol} name"
        assert templates.accessor_path(guid_args["base_string"]) == [scope_symbol, "id"]
        assert guid_args["extra_string_1"] == props["principalId"]
        assert guid_args["extra_string_2"] == role_ref
        found.append(
            (
                ra.file,
                ra.symbol,
                role_id,
                scopes[0].type,
                props["principalId"],
                props.get("principalType"),
                ra.condition,
            )
        )
    return found


def test_only_least_privilege_roles_are_assigned(templates):
    for file, symbol, role_id, *_ in _role_assignments(templates):
        assert role_id in REQUIRED_ROLES, f"{file}:{symbol} assigns an unexpected role {role_id}"


def test_identity_module_creates_one_user_assigned_identity(templates):
    templates.resource("Microsoft.ManagedIdentity/userAssignedIdentities", IDENTITY)
    assert len(templates.resources("Microsoft.ManagedIdentity/userAssignedIdentities")) == 1
    identity = templates.module(IDENTITY)
    assert identity.symbol == "identity"


def _assignments_on_its_scope(templates, role_id):
    """The role's assignments on the resource type it must be on: (file, symbol, module call,
    principal param, principal type param, condition)."""
    scope_type, _ = REQUIRED_ROLES[role_id]
    for file, symbol, rid, rtype, principal, principal_type, condition in _role_assignments(templates):
        if rid == role_id and rtype.lower() == scope_type.lower():
            yield file, symbol, templates.module(file), principal, principal_type, condition


@pytest.mark.parametrize("role_id", sorted(REQUIRED_ROLES))
def test_app_identity_holds_each_role_on_the_right_resource(templates, role_id):
    scope_type, role_name = REQUIRED_ROLES[role_id]
    matches = []
    for file, symbol, call, principal, principal_type, condition in _assignments_on_its_scope(templates, role_id):
        if templates.accessor_path(call.params.get(principal)) != ["identity", "outputs", "principalId"]:
            continue
        assert principal_type == "ServicePrincipal", f"{file}:{symbol}"
        assert condition is None, f"{file}:{symbol}: the app identity's role must not be conditional"
        matches.append((file, symbol))
    assert len(matches) == 1, f"{role_name} on {scope_type} for the app identity: {matches}"


@pytest.mark.parametrize("role_id", sorted(REQUIRED_ROLES))
def test_deploying_user_optionally_holds_each_role(templates, role_id):
    scope_type, role_name = REQUIRED_ROLES[role_id]
    matches = []
    for file, symbol, call, principal, principal_type, condition in _assignments_on_its_scope(templates, role_id):
        if call.params.get(principal) != "principalId":
            continue
        assert call.params.get(principal_type) == "principalType", f"{file}:{symbol} principalType"
        assert condition is not None, f"{file}:{symbol}: must be skipped when principalId is empty"
        matches.append((file, symbol))
    assert len(matches) == 1, f"{role_name} on {scope_type} for the deploying user: {matches}"
    assert templates.param_default(MAIN, "principalType") == "User"


def test_role_scopes_are_the_resources_the_app_uses(templates):
    rbac = templates.module(RBAC)
    assert templates.accessor_path(rbac.params["storageAccountName"]) == ["storage", "outputs", "name"]
    assert templates.accessor_path(rbac.params["applicationInsightsName"]) == [
        "monitoring",
        "outputs",
        "applicationInsightsName",
    ]
    assert templates.resource(STORAGE_ACCOUNT, RBAC, existing=True).config["name"] == "storageAccountName"
    assert templates.resource(APP_INSIGHTS, RBAC, existing=True).config["name"] == "applicationInsightsName"
    # The function app waits for its roles.
    assert "rbac" in (templates.module(FUNCTION_APP).config.get("dependsOn") or [])


# ---- function app --------------------------------------------------------------------------


def test_flex_consumption_plan(templates):
    plan = templates.resource("Microsoft.Web/serverfarms", FUNCTION_APP)
    assert plan.config["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan.config["kind"] == "functionapp"
    assert plan.config["properties"]["reserved"] is True


def test_function_app_transport_security(templates):
    app = templates.resource("Microsoft.Web/sites", FUNCTION_APP)
    props = app.config["properties"]
    assert app.config["kind"] == "functionapp,linux"
    assert props["httpsOnly"] is True
    # Flex Consumption refuses siteConfig.ftpsState; FTP is off through the publishing policies.
    assert "ftpsState" not in props["siteConfig"]
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert templates.accessor_path(props["serverFarmId"]) == ["plan", "id"]


def test_basic_publishing_credentials_are_off(templates):
    """No FTP or SCM (Kudu) user/password: deployments use Entra ID tokens (azd does)."""
    policies = templates.resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies", FUNCTION_APP)
    assert {templates.unquote(p.config["name"]): p.config["properties"] for p in policies} == {
        "ftp": {"allow": False},
        "scm": {"allow": False},
    }
    for policy in policies:
        assert policy.config["parent"] == "functionApp" and policy.condition is None


def test_function_app_runtime_and_scale(templates):
    app = templates.resource("Microsoft.Web/sites", FUNCTION_APP)
    config = app.config["properties"]["functionAppConfig"]
    assert config["runtime"]["name"] == "python"
    assert templates.param_default(FUNCTION_APP, config["runtime"]["version"]) == "3.13"
    assert "pythonVersion" not in templates.module(FUNCTION_APP).params
    scale = config["scaleAndConcurrency"]
    assert scale["instanceMemoryMB"] == "instanceMemoryMB"
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert scale["triggers"] == {"http": {"perInstanceConcurrency": "httpPerInstanceConcurrency"}}
    # Always-ready HTTP instances only when asked for: none (scale to zero) by default.
    assert scale["alwaysReady"] == {
        "operator": {
            "type": "conditional",
            "operands": {
                "condition": {
                    "operator": {
                        "type": "greater_than",
                        "operands": {"operand_1": "alwaysReadyInstances", "operand_2": 0},
                    }
                },
                "true_value": [{"name": "http", "instanceCount": "alwaysReadyInstances"}],
                "false_value": [],
            },
        }
    }
    assert templates.param_default(MAIN, "instanceMemoryMB") == 2048
    assert templates.param_default(MAIN, "maximumInstanceCount") == 100
    assert templates.param_default(MAIN, "alwaysReadyInstances") == 0
    params = templates.module(FUNCTION_APP).params
    for name in ("instanceMemoryMB", "maximumInstanceCount", "httpPerInstanceConcurrency", "alwaysReadyInstances"):
        assert params[name] == name
        # One default, in main.bicep (the module's parameter is required): nothing to keep in step.
        assert templates.param_default(FUNCTION_APP, name) is None, name
    bounds = {d["type"]: d["argument"] for d in templates.params(MAIN)["httpPerInstanceConcurrency"]["decorators"]}
    assert bounds["min_value"] == 1 and bounds["max_value"] == 1000


SCALE_ENV = {
    "httpPerInstanceConcurrency": "HTTP_PER_INSTANCE_CONCURRENCY",
    "alwaysReadyInstances": "ALWAYS_READY_INSTANCES",
    "maximumInstanceCount": "MAXIMUM_INSTANCE_COUNT",
    "callerTokensPerMinute": "CALLER_TOKENS_PER_MINUTE",
    "callerOutputTokenAllowance": "CALLER_OUTPUT_TOKEN_ALLOWANCE",
}


@pytest.mark.parametrize("param", sorted(SCALE_ENV))
def test_numeric_options_are_azd_variables_with_the_bicep_default(templates, main_parameters, param):
    """`azd env set NAME value` reaches the parameter; unset, the value is main.bicep's default.

    azd turns the substituted text into a number for int parameters; an empty text would not
    convert, so each reference carries the default.
    """
    value = main_parameters["parameters"][param]["value"]
    default = templates.param_default(MAIN, param)
    assert value == f"${{{SCALE_ENV[param]}={default}}}"


def test_deployment_storage_uses_the_managed_identity(templates):
    app = templates.resource("Microsoft.Web/sites", FUNCTION_APP)
    storage = app.config["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["value"] == "${storageBlobEndpoint}${deploymentContainerName}"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    assert app.config["identity"]["type"] == "UserAssigned"
    assert templates.keys(app.config["identity"]["userAssignedIdentities"]) == {"${identityId}"}
    params = templates.module(FUNCTION_APP).params
    assert templates.accessor_path(params["identityId"]) == ["identity", "outputs", "id"]
    assert templates.accessor_path(params["identityClientId"]) == ["identity", "outputs", "clientId"]


def test_platform_cors_is_left_empty(templates):
    """The app answers CORS itself; platform CORS too would duplicate the headers."""
    app = templates.resource("Microsoft.Web/sites", FUNCTION_APP)
    assert app.config["properties"]["siteConfig"]["cors"]["allowedOrigins"] == []


def test_service_tag_matches_azure_yaml(templates):
    app = templates.resource("Microsoft.Web/sites", FUNCTION_APP)
    fn, args = templates.function_call(app.config["tags"])
    assert fn == "union" and args["arg_1"] == "tags"
    assert {templates.unquote(k): v for k, v in args["arg_2"].items()} == {"azd-service-name": "serviceName"}
    service = templates.var(MAIN, templates.module(FUNCTION_APP).params["serviceName"])
    assert service == "api"
    assert templates.azure_yaml is not None
    assert list(templates.azure_yaml["services"]) == [service]


# ---- App Service Authentication ------------------------------------------------------------


def test_auth_is_enabled_only_with_a_client_id(templates):
    call = templates.module(AUTH, FUNCTION_APP)
    assert call.condition == "enableAuth"
    assert templates.var(FUNCTION_APP, "enableAuth") == {
        "operator": {
            "type": "not",
            "operands": {"bool_value": {"function": {"type": "empty", "parameters": {"item_to_test": "authClientId"}}}},
        }
    }
    assert call.params["clientId"] == "authClientId"
    assert templates.param_default(MAIN, "authClientId") == ""
    assert templates.module(FUNCTION_APP).params["authClientId"] == "authClientId"


def test_auth_settings(templates):
    auth = templates.resource("Microsoft.Web/sites/config", AUTH)
    assert auth.config["name"] == "authsettingsV2"
    props = auth.config["properties"]
    assert props["platform"]["enabled"] is True
    validation = props["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    assert validation["excludedPaths"] == "excludedPaths"
    call = templates.module(AUTH, FUNCTION_APP)
    assert call.params["excludedPaths"] == "authExcludedPaths"
    aad = props["identityProviders"]["azureActiveDirectory"]
    assert aad["enabled"] is True
    assert aad["registration"]["clientId"] == "clientId"
    assert aad["validation"]["allowedAudiences"] == ["api://${clientId}"]


def _anonymous_routes() -> set[str]:
    """The app's anonymous HTTP routes, as App Service Authentication paths."""
    from tests.app_functions import app_functions

    paths = set()
    for function in app_functions().values():
        for binding in function.get_bindings():
            if binding.type == "httpTrigger" and str(binding.auth_level).upper().endswith("ANONYMOUS"):
                paths.add("/api/" + re.sub(r"\{\*[^}]*\}", "*", binding.route))
    return paths


def test_auth_leaves_exactly_the_anonymous_routes_public(templates):
    """With App Service Authentication on, what the app serves anonymously (health probe, the
    sample page and its assets, the OpenAPI description) stays reachable without a token;
    everything else needs one. A route made anonymous in code must be listed here too."""
    excluded = set(templates.param_default(FUNCTION_APP, "authExcludedPaths"))
    assert excluded == _anonymous_routes()
    assert {"/api/health", "/api/openapi.json", "/api/ui", "/api/ui/*"} == excluded
    # One list, in function-app.bicep: the auth module takes it as a required parameter.
    assert templates.param_default(AUTH, "excludedPaths") is None


# ---- main.parameters.json and azure.yaml ---------------------------------------------------


def test_main_parameters_use_azd_variables(main_parameters, templates):
    values = {name: p["value"] for name, p in main_parameters["parameters"].items()}
    assert values["environmentName"] == "${AZURE_ENV_NAME}"
    assert values["location"] == "${AZURE_LOCATION}"
    assert values["principalId"] == "${AZURE_PRINCIPAL_ID}"
    params = templates.params(MAIN)
    for name, value in values.items():
        assert name in params, f"main.parameters.json sets unknown parameter {name}"
        if isinstance(value, str) and "$" in value:
            assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*(=[^{}$]*)?\}", value), f"{name}: bad azd reference {value!r}"
    required = {name for name, p in params.items() if p["default"] is None}
    assert required <= set(values), f"parameters without default missing from the file: {required - set(values)}"


def test_azure_yaml_declares_the_function_service(templates):
    doc = templates.azure_yaml
    assert doc is not None, "azure.yaml missing"
    assert doc.get("infra", {}).get("provider", "bicep") == "bicep"
    assert doc.get("infra", {}).get("path", "infra") == "infra"
    service = doc["services"]["api"]
    assert service["host"] == "function"
    assert service["language"] in {"python", "py"}
    assert service["project"] in {".", "./"}


def test_azure_yaml_has_no_secrets(infra_root):
    text = (infra_root / "azure.yaml").read_text(encoding="utf-8")
    for pattern in SECRET_PATTERNS:
        assert not re.search(pattern, text, flags=re.IGNORECASE)
