"""Offline schema check of the Bicep templates against Azure's own API models.

No Bicep compiler can be installed here, so nothing else would notice a misspelt property, a
property nested at the wrong level, an enum value the API does not know, or a property that does
not exist in the api-version a resource declares, until `azd up` fails in Azure. The Azure
management SDKs carry, per api-version, the models the REST API accepts (generated from the same
OpenAPI specifications as the resource provider), with each property's wire name, nesting, type,
read-only flag and known enum values. This script walks every resource of every template under
infra/, parsed with pycep (the parser checkov uses), and compares it with the model of the exact
api-version it declares.

Limits: pycep renders string literals and identifiers alike, so a bare string that equals a
parameter, variable or symbol name is read as a reference (and checked through that parameter's
type, allowed values and default); expressions (function calls, operators) are not evaluated,
except that both branches of `cond ? a : b` are checked.

Runs under the infra tool venv (.venv-infra: pycep and the SDKs pinned in requirements-infra.txt);
tests/infra/test_arm_schema.py calls it and reads the JSON it prints:

    .venv-infra/bin/python tests/infra/arm_schema.py ROOT [ROOT ...]
    .venv-infra/bin/python tests/infra/arm_schema.py --check [ROOT]   # make infra-check

Output: {"roots": {ROOT: {"findings": [...], "checked": [...], "errors": {...}}}}
"""

from __future__ import annotations

import difflib
import enum
import importlib
import inspect
import json
import os
import re
import sys
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser


@dataclass(frozen=True)
class Schema:
    """Where the model of one resource type at one api-version lives.

    ``models`` is the SDK module holding that api-version's models, ``model`` the body of a PUT
    and ``read`` the body of a GET where it differs (what `symbol.properties.x` reads). Packages
    that carry a single api-version keep it in their client configuration: ``config`` names that
    class so the check can prove the version is the template's.
    """

    models: str
    model: str
    config: str | None = None
    read: str | None = None


# Every resource type@api-version the templates may use. A template moving to another api-version
# fails the check until this table and the pin in requirements-infra.txt move with it.
SCHEMAS: dict[tuple[str, str], Schema] = {
    ("microsoft.resources/resourcegroups", "2024-07-01"): Schema(
        "azure.mgmt.resource.resources.v2024_07_01.models", "ResourceGroup"
    ),
    ("microsoft.managedidentity/userassignedidentities", "2023-01-31"): Schema(
        "azure.mgmt.msi.v2023_01_31.models", "Identity"
    ),
    ("microsoft.storage/storageaccounts", "2023-05-01"): Schema(
        "azure.mgmt.storage.v2023_05_01.models", "StorageAccountCreateParameters", read="StorageAccount"
    ),
    ("microsoft.storage/storageaccounts/blobservices", "2023-05-01"): Schema(
        "azure.mgmt.storage.v2023_05_01.models", "BlobServiceProperties"
    ),
    ("microsoft.storage/storageaccounts/managementpolicies", "2023-05-01"): Schema(
        "azure.mgmt.storage.v2023_05_01.models", "ManagementPolicy"
    ),
    ("microsoft.storage/storageaccounts/blobservices/containers", "2023-05-01"): Schema(
        "azure.mgmt.storage.v2023_05_01.models", "BlobContainer"
    ),
    ("microsoft.storage/storageaccounts/queueservices", "2023-05-01"): Schema(
        "azure.mgmt.storage.v2023_05_01.models", "QueueServiceProperties"
    ),
    ("microsoft.storage/storageaccounts/queueservices/queues", "2023-05-01"): Schema(
        "azure.mgmt.storage.v2023_05_01.models", "StorageQueue"
    ),
    ("microsoft.storage/storageaccounts/tableservices", "2023-05-01"): Schema(
        "azure.mgmt.storage.v2023_05_01.models", "TableServiceProperties"
    ),
    ("microsoft.storage/storageaccounts/tableservices/tables", "2023-05-01"): Schema(
        "azure.mgmt.storage.v2023_05_01.models", "Table"
    ),
    ("microsoft.operationalinsights/workspaces", "2025-07-01"): Schema(
        "azure.mgmt.loganalytics.models",
        "Workspace",
        "azure.mgmt.loganalytics._configuration:LogAnalyticsManagementClientConfiguration",
    ),
    ("microsoft.insights/components", "2020-02-02"): Schema(
        "azure.mgmt.applicationinsights.v2020_02_02.models", "ApplicationInsightsComponent"
    ),
    ("microsoft.authorization/roleassignments", "2022-04-01"): Schema(
        "azure.mgmt.authorization.v2022_04_01.models", "RoleAssignmentCreateParameters", read="RoleAssignment"
    ),
    ("microsoft.cognitiveservices/accounts", "2024-10-01"): Schema(
        "azure.mgmt.cognitiveservices.models",
        "Account",
        "azure.mgmt.cognitiveservices._configuration:CognitiveServicesManagementClientConfiguration",
    ),
    ("microsoft.cognitiveservices/accounts/deployments", "2024-10-01"): Schema(
        "azure.mgmt.cognitiveservices.models",
        "Deployment",
        "azure.mgmt.cognitiveservices._configuration:CognitiveServicesManagementClientConfiguration",
    ),
    ("microsoft.web/serverfarms", "2024-04-01"): Schema("azure.mgmt.web.v2024_04_01.models", "AppServicePlan"),
    ("microsoft.web/sites", "2024-04-01"): Schema("azure.mgmt.web.v2024_04_01.models", "Site"),
    ("microsoft.web/sites/basicpublishingcredentialspolicies", "2024-04-01"): Schema(
        "azure.mgmt.web.v2024_04_01.models", "CsmPublishingCredentialsPoliciesEntity"
    ),
}

# Microsoft.Web/sites/config is one type whose body depends on its name.
SITE_CONFIG_MODELS = {
    "authsettingsv2": "SiteAuthSettingsV2",
    "web": "SiteConfigResource",
    "appsettings": "StringDictionary",
    "logs": "SiteLogsConfig",
}
SITE_CONFIG = "microsoft.web/sites/config"
SITE_CONFIG_VERSIONS = {"2024-04-01": "azure.mgmt.web.v2024_04_01.models"}

# Bicep's own keys in a resource body, not part of the API's body ("name" goes into the URL).
BICEP_KEYWORDS = {"name", "parent", "scope", "dependsOn"}
PRIMITIVES = {
    "str": "string",
    "int": "int",
    "long": "int",
    "float": "number",
    "decimal": "number",
    "bool": "bool",
    "iso-8601": "string",
    "rfc-1123": "string",
    "duration": "string",
    "date": "string",
    "unix-time": "int",
    "bytearray": "string",
    "base64": "string",
    "object": "any",
}
# Bicep parameter type -> the SDK primitive kinds it may feed.
PARAM_KINDS = {
    "string": {"string", "any"},
    "int": {"int", "number", "any"},
    "bool": {"bool", "any"},
    "object": {"object", "any"},
    "array": {"array", "any"},
}


# --------------------------------------------------------------------------------------------
# The model side: a tree of wire names per model
# --------------------------------------------------------------------------------------------


@dataclass
class Field:
    """One wire property: its SDK type string, and what the API says about it."""

    type: str
    readonly: bool = False
    required: bool = False
    enum: frozenset[str] | None = None  # known values, lower-cased (Azure enums are case-insensitive)
    model: str = ""  # the model that declares it (for messages)


@dataclass
class Node:
    """An object on the wire: a model, or a flattening level such as 'properties'."""

    name: str
    children: dict[str, Field | Node] = field(default_factory=dict)


def _split_key(key: str) -> list[str]:
    return [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", key)]


def _enum_values(models: Any, cls: type, attr: str) -> frozenset[str] | None:
    """Known values of an enum-typed attribute, from the type hints of the model's __init__."""
    try:
        parameter = inspect.signature(cls.__init__).parameters.get(attr)  # type: ignore[misc]
    except (TypeError, ValueError):
        return None
    if parameter is None:
        return None

    def walk(annotation: Any) -> frozenset[str] | None:
        if isinstance(annotation, str):
            annotation = typing.ForwardRef(annotation)
        if isinstance(annotation, typing.ForwardRef):
            target = getattr(models, annotation.__forward_arg__.rsplit(".", 1)[-1], None)
            if isinstance(target, type) and issubclass(target, enum.Enum):
                return frozenset(str(member.value).lower() for member in target)
            return None
        for arg in typing.get_args(annotation):
            found = walk(arg)
            if found is not None:
                return found
        return None

    return walk(parameter.annotation)


@cache
def model_tree(models_module: str, model: str) -> Node:
    models = importlib.import_module(models_module)
    cls = getattr(models, model)
    root = Node(model)
    validation = getattr(cls, "_validation", {}) or {}
    for attr, spec in cls._attribute_map.items():
        parts = _split_key(spec["key"])
        node = root
        for part in parts[:-1]:
            child = node.children.get(part)
            if not isinstance(child, Node):
                child = Node(f"{model}.{part}")
                node.children[part] = child
            node = child
        rules = validation.get(attr, {})
        node.children[parts[-1]] = Field(
            type=spec["type"],
            readonly=bool(rules.get("readonly")),
            required=bool(rules.get("required")),
            enum=_enum_values(models, cls, attr),
            model=model,
        )
    return root


# --------------------------------------------------------------------------------------------
# The template side
# --------------------------------------------------------------------------------------------


def unquote(key: str) -> str:
    if len(key) >= 2 and key[0] == key[-1] == "'":
        return key[1:-1]
    return key


def accessor_path(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    operator = value.get("operator") if isinstance(value, dict) else None
    if not isinstance(operator, dict) or operator.get("type") != "property_accessor":
        return None
    head = accessor_path(operator["operands"]["operand_1"])
    tail = accessor_path(operator["operands"]["operand_2"])
    return None if head is None or tail is None else head + tail


def _unwrap(config: dict[str, Any]) -> dict[str, Any]:
    while isinstance(config, dict) and "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def _is_expression(value: Any) -> bool:
    return isinstance(value, dict) and (set(value) in ({"operator"}, {"function"}) or "loop_type" in value)


@dataclass
class Context:
    rel: str
    template: dict[str, Any]
    models: Any
    findings: list[str]

    @property
    def params(self) -> dict[str, Any]:
        return self.template.get("parameters") or {}

    @property
    def variables(self) -> dict[str, Any]:
        return self.template.get("variables") or {}

    def names(self) -> set[str]:
        found = set(self.params) | set(self.variables)
        found |= set(self.template.get("resources") or {}) | set(self.template.get("modules") or {})
        return found


def _kind(field_type: str) -> str:
    if field_type.startswith("["):
        return "array"
    if field_type.startswith("{"):
        return "object"
    return PRIMITIVES.get(field_type, "object")


def _literal_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def check_value(ctx: Context, where: str, value: Any, target: Field | Node, depth: int = 0) -> None:
    """Compare one template value with what the API accepts there."""
    if value is None or depth > 20:
        return
    if isinstance(value, dict) and set(value) == {"operator"}:
        operator = value["operator"]
        if operator.get("type") == "conditional":  # both branches must fit
            operands = operator.get("operands", {})
            for branch in ("true_value", "false_value"):
                check_value(ctx, where, operands.get(branch), target, depth + 1)
        return
    if _is_expression(value) and "loop_type" not in value:
        return
    if isinstance(value, str) and value in ctx.names() and not (isinstance(target, Field) and "${" in value):
        _check_reference(ctx, where, value, target, depth)
        return
    if isinstance(target, Node):
        _check_object(ctx, where, value, target, depth)
        return
    field_type = target.type
    kind = _kind(field_type)
    if field_type.startswith("["):
        element = Field(field_type[1:-1], enum=target.enum, model=target.model)
        if isinstance(value, dict) and "loop_type" in value:
            check_value(ctx, f"{where}[]", _unwrap(value), _resolve(ctx, element), depth + 1)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                check_value(ctx, f"{where}[{index}]", item, _resolve(ctx, element), depth + 1)
        else:
            ctx.findings.append(f"{where}: expects an array ({field_type}), got {_literal_kind(value)}")
        return
    if field_type.startswith("{"):
        if not isinstance(value, dict) or _is_expression(value):
            ctx.findings.append(f"{where}: expects an object ({field_type}), got {_literal_kind(value)}")
            return
        element = _resolve(ctx, Field(field_type[1:-1], model=target.model))
        for key, item in value.items():
            check_value(ctx, f"{where}.{unquote(key)}", item, element, depth + 1)
        return
    if kind == "object":  # a model reference that _resolve has not expanded (should not happen)
        return
    literal = _literal_kind(value)
    if kind == "any":
        return
    if isinstance(value, str) and "${" in value:
        if kind not in {"string"}:
            ctx.findings.append(f"{where}: expects {kind}, got an interpolated string")
        return
    if literal != kind and not (kind == "number" and literal == "int"):
        ctx.findings.append(f"{where}: expects {kind} ({field_type}), got {literal} {value!r}")
        return
    if target.enum and isinstance(value, str) and value.lower() not in target.enum:
        ctx.findings.append(
            f"{where}: {value!r} is not a known value ({', '.join(sorted(target.enum))})"
            f"{_suggest(value.lower(), sorted(target.enum))}"
        )


def _resolve(ctx: Context, target: Field) -> Field | Node:
    """A field whose type is a model becomes that model's tree."""
    if target.type in PRIMITIVES or target.type[:1] in "[{":
        return target
    if hasattr(ctx.models, target.type):
        return model_tree(ctx.models.__name__, target.type)
    return target


def _check_reference(ctx: Context, where: str, name: str, target: Field | Node, depth: int) -> None:
    """A parameter or variable used as a value: its type, allowed values and default must fit."""
    if name in ctx.variables:
        check_value(ctx, where, ctx.variables[name].get("value"), target, depth + 1)
        return
    param = ctx.params.get(name)
    if param is None:  # a resource or module symbol: Bicep checks those
        return
    expected = "object" if isinstance(target, Node) else _kind(target.type)
    allowed_kinds = PARAM_KINDS.get(param.get("type", ""), {"any"})
    if expected not in allowed_kinds and expected != "any" and "any" not in allowed_kinds:
        ctx.findings.append(f"{where}: parameter {name} is {param.get('type')}, the API expects {expected}")
        return
    if isinstance(target, Field) and target.enum:
        candidates = [param.get("default")]
        for decorator in param.get("decorators") or []:
            if decorator.get("type") == "allowed":
                candidates += list(decorator.get("argument") or [])
        for candidate in dict.fromkeys(c for c in candidates if isinstance(c, str)):
            literal = isinstance(candidate, str) and "${" not in candidate and candidate not in ctx.names()
            if literal and str(candidate).lower() not in target.enum:
                ctx.findings.append(
                    f"{where}: parameter {name} allows {candidate!r}, not a known value "
                    f"({', '.join(sorted(target.enum))})"
                )


def _check_object(ctx: Context, where: str, value: Any, node: Node, depth: int, top: bool = False) -> None:
    if not isinstance(value, dict) or _is_expression(value):
        ctx.findings.append(f"{where}: expects an object ({node.name}), got {_literal_kind(value)}")
        return
    present = set()
    for raw_key, item in value.items():
        key = unquote(raw_key)
        present.add(key)
        if top and key in BICEP_KEYWORDS:
            continue
        path = f"{where}.{key}" if where else key
        child = node.children.get(key)
        if child is None:
            same_case = [name for name in node.children if name.lower() == key.lower()]
            if same_case:
                ctx.findings.append(f"{path}: wrong case, the API spells it {same_case[0]}")
            else:
                ctx.findings.append(
                    f"{path}: not a property of {node.name} in this api-version{_suggest(key, list(node.children))}"
                )
            continue
        if isinstance(child, Field):
            if child.readonly:
                ctx.findings.append(f"{path}: read-only in the API (set by Azure, ignored or refused on write)")
                continue
            check_value(ctx, path, item, _resolve(ctx, child), depth + 1)
        else:
            check_value(ctx, path, item, child, depth + 1)
    for name, child in node.children.items():
        if isinstance(child, Field) and child.required and not child.readonly and name not in present:
            ctx.findings.append(f"{where + '.' if where else ''}{name}: required by the API but not set")


# --------------------------------------------------------------------------------------------
# Whole templates
# --------------------------------------------------------------------------------------------


def schema_for(type_: str, version: str, body: dict[str, Any]) -> tuple[str, str, str] | str:
    """(models module, PUT model, GET model) for a resource, or the reason there is none."""
    key = (type_.lower(), version)
    if key[0] == SITE_CONFIG:
        module = SITE_CONFIG_VERSIONS.get(version)
        name = unquote(str(body.get("name", ""))).lower()
        if module is None:
            return f"no schema for {type_}@{version}: add the api-version to SITE_CONFIG_VERSIONS"
        if name not in SITE_CONFIG_MODELS:
            return f"no schema for {type_} named {name!r}: add it to SITE_CONFIG_MODELS"
        return module, SITE_CONFIG_MODELS[name], SITE_CONFIG_MODELS[name]
    schema = SCHEMAS.get(key)
    if schema is None:
        return (
            f"no schema for {type_}@{version}: add it to SCHEMAS in tests/infra/arm_schema.py "
            "and pin an SDK that has this api-version in requirements-infra.txt"
        )
    if schema.config is not None:
        actual = _single_api_version(schema.config)
        if actual != version:
            return f"{type_}@{version}: the pinned SDK ({schema.models}) models api-version {actual}"
    return schema.models, schema.model, schema.read or schema.model


@cache
def _single_api_version(config: str) -> str:
    module, name = config.split(":")
    cls = getattr(importlib.import_module(module), name)
    return str(cls(credential=object(), subscription_id="00000000-0000-0000-0000-000000000000").api_version)


INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
DOTTED = re.compile(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def _walk_accessors(value: Any, found: list[list[str]]) -> None:
    """Every `a.b.c` read: accessor nodes, and dotted names inside '${...}' interpolations."""
    if isinstance(value, str):
        for inner in INTERPOLATION.findall(value):
            found += [match.split(".") for match in DOTTED.findall(inner)]
    elif isinstance(value, dict):
        path = accessor_path(value)
        if path is not None and len(path) > 1:
            found.append(path)
            return
        for item in value.values():
            _walk_accessors(item, found)
    elif isinstance(value, list):
        for item in value:
            _walk_accessors(item, found)


def check_reads(ctx: Context, resources: dict[str, tuple[str, str]]) -> None:
    """`symbol.properties.x.y` reads (outputs, settings) must name real properties too."""
    paths: list[list[str]] = []
    for section in ("resources", "modules", "variables", "outputs"):
        _walk_accessors(ctx.template.get(section) or {}, paths)
    for path in paths:
        symbol = path[0]
        if symbol not in resources or path[1] != "properties":
            continue
        models_module, model = resources[symbol]
        node: Field | Node = model_tree(models_module, model)
        walked = [symbol]
        for part in path[1:]:
            walked.append(part)
            if isinstance(node, Field):
                node = _resolve(Context(ctx.rel, ctx.template, importlib.import_module(models_module), []), node)
            if not isinstance(node, Node):
                break
            child = node.children.get(part)
            if child is None:
                ctx.findings.append(
                    f"{ctx.rel}: reads {'.'.join(walked)}: not a property of {node.name}"
                    f"{_suggest(part, list(node.children))}"
                )
                break
            node = child


def check_modules(ctx: Context, parsed: dict[str, dict[str, Any]]) -> None:
    """Module calls pass only parameters the module declares, and every required one."""
    base = Path(ctx.rel).parent
    for symbol, module in (ctx.template.get("modules") or {}).items():
        normalized = os.path.normpath((base / module["detail"]["path"]).as_posix())
        declared = (parsed.get(normalized) or {}).get("parameters")
        if declared is None:
            continue
        body = _unwrap(module["config"])
        passed = {unquote(k) for k in (body.get("params") or {})}
        for name in sorted(passed - set(declared)):
            ctx.findings.append(f"{ctx.rel}: module {symbol} passes {name}, which {normalized} does not declare")
        for name, param in declared.items():
            if param.get("default") is None and name not in passed:
                ctx.findings.append(f"{ctx.rel}: module {symbol} does not pass required {name} of {normalized}")


def check_root(root: Path) -> dict[str, Any]:
    parser = BicepParser()
    parsed: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for path in sorted((root / "infra").rglob("*.bicep")):
        rel = path.relative_to(root / "infra").as_posix()
        try:
            parsed[rel] = parser.parse(text=path.read_text(encoding="utf-8"))
        except Exception as exc:
            errors[rel] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    findings: list[str] = []
    checked: list[str] = []
    for rel, template in parsed.items():
        resources: dict[str, tuple[str, str]] = {}
        for symbol, resource in (template.get("resources") or {}).items():
            body = _unwrap(resource["config"])
            label = f"{rel}: {symbol} ({resource['type']}@{resource['api_version']})"
            schema = schema_for(resource["type"], resource["api_version"], body)
            if isinstance(schema, str):
                findings.append(f"{label}: {schema}")
                continue
            models_module, model, read_model = schema
            resources[symbol] = (models_module, read_model)
            ctx = Context(rel, template, importlib.import_module(models_module), [])
            tree = model_tree(models_module, model)
            if resource.get("existing"):
                extra = sorted(set(map(unquote, body)) - {"name", "scope", "parent"})
                ctx.findings += [f"{key}: an existing resource takes only name, scope and parent" for key in extra]
            else:
                _check_object(ctx, "", body, tree, 0, top=True)
            findings += [f"{label}: {finding}" for finding in ctx.findings]
            checked.append(f"{label} -> {models_module}.{model}")
        ctx = Context(rel, template, None, [])
        check_reads(ctx, resources)
        check_modules(ctx, parsed)
        findings += ctx.findings
    return {"findings": findings, "checked": checked, "errors": errors}


def main(argv: list[str]) -> int:
    """JSON for the tests; with --check (make infra-check), readable findings and exit 1 on any."""
    readable = "--check" in argv
    roots = [Path(arg).resolve() for arg in argv if arg != "--check"] or [Path(__file__).resolve().parents[2]]
    results = {str(root): check_root(root) for root in roots}
    if not readable:
        json.dump({"roots": results}, sys.stdout, indent=1)
        return 0
    problems = [f"{rel}: {error}" for result in results.values() for rel, error in result["errors"].items()]
    problems += [finding for result in results.values() for finding in result["findings"]]
    for problem in problems:
        print(f"schema: {problem}", file=sys.stderr)
    checked = sum(len(result["checked"]) for result in results.values())
    print(f"schema: {checked} resources checked against the Azure SDK models, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
