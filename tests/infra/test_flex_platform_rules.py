"""What Flex Consumption refuses or ignores, one rule per row, each with its source.

A property or setting from another hosting plan either fails the deployment at create time
("site configuration properties (...) for Flex Consumption sites is invalid") or is silently
ignored, so none may appear in the templates. The lists are Microsoft's "Flex Consumption plan
deprecations" table; the numeric limits come from the Flex Consumption documentation.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

FUNCTION_APP = "app/function-app.bicep"
MAIN = "main.bicep"

DEPRECATIONS = (
    "https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations"
)
INSTANCE_SIZES = "https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan#instance-sizes"
SCALE_LIMIT = "https://learn.microsoft.com/azure/azure-functions/event-driven-scaling#limit-scale-out"
ALWAYS_READY = "https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan#always-ready-instances"
HTTP_CONCURRENCY = "https://learn.microsoft.com/azure/azure-functions/functions-concurrency#http-trigger-concurrency"
CONSIDERATIONS = "https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan#considerations"
REGIONS = "https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#view-currently-supported-regions"
IAC = "https://learn.microsoft.com/azure/azure-functions/functions-infrastructure-as-code?pivots=flex-consumption-plan"

# Site properties (on the site or its siteConfig): name -> (what Microsoft says, source).
FORBIDDEN_SITE_PROPERTIES: dict[str, tuple[str, str]] = {
    "alwaysOn": ("not valid", DEPRECATIONS),
    "containerSize": ("renamed as instanceMemoryMB", DEPRECATIONS),
    "ftpsState": ("FTPS not supported; refused at create time", DEPRECATIONS),
    "isReserved": ("not valid", DEPRECATIONS),
    "reserved": ("not valid on the site (isReserved; the plan keeps reserved: true)", DEPRECATIONS),
    "isXenon": ("not valid", DEPRECATIONS),
    "javaVersion": ("replaced by functionAppConfig.runtime.version", DEPRECATIONS),
    "linuxFxVersion": ("replaced by functionAppConfig.runtime", DEPRECATIONS),
    "netFrameworkVersion": ("replaced by functionAppConfig.runtime.version", DEPRECATIONS),
    "powerShellVersion": ("replaced by functionAppConfig.runtime.version", DEPRECATIONS),
    "functionAppScaleLimit": ("renamed as maximumInstanceCount", DEPRECATIONS),
    "preWarmedInstanceCount": ("renamed as alwaysReady instances", DEPRECATIONS),
    "use32BitWorkerProcess": ("32-bit not supported", DEPRECATIONS),
    "vnetBackupRestoreEnabled": ("not used for networking in Flex Consumption", DEPRECATIONS),
    "vnetContentShareEnabled": ("not used for networking in Flex Consumption", DEPRECATIONS),
    "vnetImagePullEnabled": ("not used for networking in Flex Consumption", DEPRECATIONS),
    "vnetRouteAllEnabled": ("not used for networking in Flex Consumption", DEPRECATIONS),
    "windowsFxVersion": ("not valid", DEPRECATIONS),
}

# App settings: name -> (what Microsoft says, source).
FORBIDDEN_APP_SETTINGS: dict[str, tuple[str, str]] = {
    "ENABLE_ORYX_BUILD": ("replaced by the remoteBuild deployment parameter", DEPRECATIONS),
    "FUNCTIONS_EXTENSION_VERSION": ("set by the backend", DEPRECATIONS),
    "FUNCTIONS_WORKER_RUNTIME": ("replaced by functionAppConfig.runtime.name", DEPRECATIONS),
    "FUNCTIONS_WORKER_RUNTIME_VERSION": ("replaced by functionAppConfig.runtime.version", DEPRECATIONS),
    "FUNCTIONS_MAX_HTTP_CONCURRENCY": ("replaced by scaleAndConcurrency.triggers", DEPRECATIONS),
    "FUNCTIONS_WORKER_PROCESS_COUNT": ("not valid", DEPRECATIONS),
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED": ("not valid", DEPRECATIONS),
    "SCM_DO_BUILD_DURING_DEPLOYMENT": ("replaced by the remoteBuild deployment parameter", DEPRECATIONS),
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": ("replaced by functionAppConfig.deployment", DEPRECATIONS),
    "WEBSITE_CONTENTOVERVNET": ("not used for networking in Flex Consumption", DEPRECATIONS),
    "WEBSITE_CONTENTSHARE": ("replaced by functionAppConfig.deployment", DEPRECATIONS),
    "WEBSITE_DNS_SERVER": ("DNS comes from the integrated virtual network", DEPRECATIONS),
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT": ("replaced by maximumInstanceCount", DEPRECATIONS),
    "WEBSITE_NODE_DEFAULT_VERSION": ("replaced by functionAppConfig.runtime.version", DEPRECATIONS),
    "WEBSITE_RUN_FROM_PACKAGE": ("not used for deployments in Flex Consumption", DEPRECATIONS),
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION": ("content share is not used in Flex Consumption", DEPRECATIONS),
    "WEBSITE_VNET_ROUTE_ALL": ("not used for networking in Flex Consumption", DEPRECATIONS),
}

# Regions that offer Flex Consumption (`az functionapp list-flexconsumption-locations`, REGIONS),
# as listed by Microsoft's own azd Flex Consumption quickstart (Azure-Samples/
# functions-quickstart-python-http-azd, infra/main.bicep), canary regions left out.
FLEX_REGIONS = {
    "australiaeast",
    "australiasoutheast",
    "brazilsouth",
    "canadacentral",
    "centralindia",
    "centralus",
    "eastasia",
    "eastus",
    "eastus2",
    "francecentral",
    "germanywestcentral",
    "italynorth",
    "japaneast",
    "koreacentral",
    "northcentralus",
    "northeurope",
    "norwayeast",
    "southafricanorth",
    "southcentralus",
    "southeastasia",
    "southindia",
    "spaincentral",
    "swedencentral",
    "uaenorth",
    "uksouth",
    "ukwest",
    "westcentralus",
    "westeurope",
    "westus",
    "westus2",
    "westus3",
}


def _keys_anywhere(value: Any) -> set[str]:
    """Every object key in a parsed body, at any depth, lower-cased."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(key.strip("'").lower())
            found |= _keys_anywhere(item)
    elif isinstance(value, list):
        for item in value:
            found |= _keys_anywhere(item)
    return found


def _code(text: str) -> str:
    """The text without // comments (a '//' right after ':' is a URL, not a comment)."""
    return "\n".join(re.sub(r"(?<!:)//.*$", "", line) for line in text.splitlines())


def _settings(templates) -> set[str]:
    return {templates.unquote(k) for k in templates.var(FUNCTION_APP, "settings")}


def _decorator(templates, file: str, param: str, kind: str) -> Any:
    for decorator in templates.params(file)[param]["decorators"]:
        if decorator["type"] == kind:
            return decorator["argument"]
    return None


@pytest.mark.parametrize("prop", sorted(FORBIDDEN_SITE_PROPERTIES))
def test_no_site_property_flex_rejects(templates, prop):
    reason, source = FORBIDDEN_SITE_PROPERTIES[prop]
    for site in templates.resources("Microsoft.Web/sites") + templates.resources("Microsoft.Web/sites/config"):
        if site.existing:
            continue
        body = site.config.get("properties", {})
        assert prop.lower() not in _keys_anywhere(body), f"{site.file}:{site.symbol} sets {prop}: {reason} ({source})"


@pytest.mark.parametrize("name", sorted(FORBIDDEN_APP_SETTINGS))
def test_no_app_setting_flex_rejects(templates, name):
    reason, source = FORBIDDEN_APP_SETTINGS[name]
    assert name not in _settings(templates), f"{name}: {reason} ({source})"
    for rel in templates.files:  # nor anywhere else in the templates' code (comments may name them)
        assert not re.search(rf"\b{name}\b", _code(templates.text(rel))), f"{rel} uses {name}: {reason} ({source})"


def test_app_settings_json_lists_the_same_forbidden_settings(app_settings_spec):
    assert set(app_settings_spec["forbiddenOnFlexConsumption"]) == set(FORBIDDEN_APP_SETTINGS)


def test_plan_is_flex_consumption_on_linux(templates):
    # Source: IAC (serverfarms: sku FC1 / FlexConsumption, reserved: true for Linux).
    plan = templates.resource("Microsoft.Web/serverfarms", FUNCTION_APP)
    assert plan.config["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan.config["properties"]["reserved"] is True


def test_one_app_per_plan_and_no_slots(templates):
    # Source: CONSIDERATIONS ("Only one app is allowed per Flex Consumption plan"; no deployment slots).
    sites = [r for r in templates.resources("Microsoft.Web/sites") if not r.existing]
    assert len(sites) == 1 and len(templates.resources("Microsoft.Web/serverfarms")) == 1
    assert templates.resources("Microsoft.Web/sites/slots") == []


def test_runtime_and_deployment_come_from_function_app_config(templates):
    # Source: IAC (functionAppConfig.runtime and functionAppConfig.deployment are required on Flex).
    app = templates.resource("Microsoft.Web/sites", FUNCTION_APP)
    config = app.config["properties"]["functionAppConfig"]
    assert config["runtime"]["name"] == "python"
    assert config["deployment"]["storage"]["type"] == "blobContainer"


@pytest.mark.parametrize("file", [MAIN, FUNCTION_APP])
def test_instance_memory_is_a_flex_size(templates, file):
    # Source: INSTANCE_SIZES (512, 2048 and 4096 MB).
    assert set(_decorator(templates, file, "instanceMemoryMB", "allowed")) <= {512, 2048, 4096}


@pytest.mark.parametrize("file", [MAIN, FUNCTION_APP])
def test_maximum_instance_count_is_within_the_platform_range(templates, file):
    # Source: SCALE_LIMIT. Microsoft documented 40 as the lowest maximum instance count and 1000 as
    # the highest for most of the plan's life (later pages say 1); 40-1000 is valid under both.
    assert _decorator(templates, file, "maximumInstanceCount", "min_value") >= 40
    assert _decorator(templates, file, "maximumInstanceCount", "max_value") <= 1000
    default = templates.param_default(MAIN, "maximumInstanceCount")
    assert 40 <= default <= 1000


def test_always_ready_instances_default_to_none(templates):
    # Source: ALWAYS_READY ("The default is 0"; any count above 0 is billed whether used or not).
    for file in (MAIN, FUNCTION_APP):
        assert _decorator(templates, file, "alwaysReadyInstances", "min_value") == 0
    assert templates.param_default(MAIN, "alwaysReadyInstances") == 0


def test_http_concurrency_is_set_explicitly(templates):
    # Source: HTTP_CONCURRENCY (Python apps default to one concurrent HTTP request per instance,
    # which for an I/O-bound relay means one instance per in-flight stream).
    app = templates.resource("Microsoft.Web/sites", FUNCTION_APP)
    scale = app.config["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["triggers"] == {"http": {"perInstanceConcurrency": "httpPerInstanceConcurrency"}}
    assert templates.param_default(MAIN, "httpPerInstanceConcurrency") > 1


def test_location_is_limited_to_flex_regions(templates):
    # Source: REGIONS. A region without Flex Consumption fails late (at the plan), after the
    # resource group, storage and OpenAI account exist; azd prompts from this list instead.
    allowed = _decorator(templates, MAIN, "location", "allowed")
    assert allowed is not None, "location has no @allowed list"
    assert set(allowed) == FLEX_REGIONS
    metadata = _decorator(templates, MAIN, "location", "metadata")
    assert metadata == {"azd": {"type": "location"}}
