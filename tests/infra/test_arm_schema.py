"""Every resource in infra/ matches Azure's API model for its exact api-version (arm_schema.py).

The check runs once per session under the infra venv, over the real templates and over copies
with one deliberate mistake each, so the tests also prove that each kind of mistake is caught.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent

# name -> (file under infra/, text to replace (first occurrence), replacement, expected finding)
MISTAKES: dict[str, tuple[str, str, str, str]] = {
    "misspelt property": (
        "app/function-app.bicep",
        "httpsOnly: true",
        "httpOnly: true",
        "properties.httpOnly: not a property of Site.properties in this api-version (did you mean httpsOnly?)",
    ),
    "property at the wrong level": (
        "app/function-app.bicep",
        "httpsOnly: true",
        "httpsOnly: true\n    minTlsVersion: '1.2'",
        "properties.minTlsVersion: not a property of Site",
    ),
    "unknown enum value": (
        "core/rbac.bicep",
        "principalType: 'ServicePrincipal'",
        "principalType: 'ServicePrincipals'",
        "properties.principalType: 'ServicePrincipals' is not a known value",
    ),
    "string where the API wants a bool": (
        "core/storage.bicep",
        "allowSharedKeyAccess: false",
        "allowSharedKeyAccess: 'false'",
        "properties.allowSharedKeyAccess: expects bool",
    ),
    "wrong case": (
        "core/monitoring.bicep",
        "DisableLocalAuth: true",
        "disableLocalAuth: true",
        "properties.disableLocalAuth: wrong case, the API spells it DisableLocalAuth",
    ),
    "read-only property": (
        "app/function-app.bicep",
        "httpsOnly: true",
        "httpsOnly: true\n    defaultHostName: 'example.net'",
        "properties.defaultHostName: read-only in the API",
    ),
    "misspelt read of a property": (
        "app/openai-access.bicep",
        "account.properties.customSubDomainName",
        "account.properties.customSubdomainName",
        "reads account.properties.customSubdomainName: not a property of AccountProperties",
    ),
    "required module parameter not passed": (
        "main.bicep",
        "    httpPerInstanceConcurrency: httpPerInstanceConcurrency\n",
        "",
        "module functionApp does not pass required httpPerInstanceConcurrency of app/function-app.bicep",
    ),
    "api-version without a model": (
        "core/identity.bicep",
        "userAssignedIdentities@2023-01-31",
        "userAssignedIdentities@2024-11-30",
        "no schema for Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30",
    ),
    "unknown module parameter": (
        "main.bicep",
        "    logContent: logContent\n",
        "    logContents: logContent\n",
        "module functionApp passes logContents, which app/function-app.bicep does not declare",
    ),
    "parameter allowing an unknown enum value": (
        "app/openai.bicep",
        "@allowed([\n  'Enabled'\n  'Disabled'\n])",
        "@allowed([\n  'Enabled'\n  'Disable'\n])",
        "parameter publicNetworkAccess allows 'Disable', not a known value",
    ),
}


@pytest.fixture(scope="session")
def schema_runs(
    infra_root: Path, infra_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    roots = {"clean": infra_root}
    for name, (rel, old, new, _) in MISTAKES.items():
        root = tmp_path_factory.mktemp("schema")
        shutil.copytree(infra_root / "infra", root / "infra")
        target = root / "infra" / rel
        text = target.read_text(encoding="utf-8")
        assert old in text, f"{name}: {old!r} no longer in {rel}; update the mistake"
        target.write_text(text.replace(old, new, 1), encoding="utf-8")
        roots[name] = root
    proc = subprocess.run(
        [str(infra_python), str(HERE / "arm_schema.py"), *map(str, roots.values())],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    by_path = json.loads(proc.stdout)["roots"]
    return {name: by_path[str(Path(root).resolve())] for name, root in roots.items()}


def test_templates_match_the_api_models(schema_runs):
    clean = schema_runs["clean"]
    assert clean["errors"] == {}
    assert clean["findings"] == [], "\n".join(clean["findings"])


def test_every_resource_is_checked(schema_runs, templates):
    checked = {line.split(" (", 1)[0] for line in schema_runs["clean"]["checked"]}
    expected = {f"{r.file}: {r.symbol}" for r in templates.resources()}
    assert expected == checked, sorted(expected ^ checked)


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_kind_of_mistake_is_caught(schema_runs, mistake):
    rel, _, _, expected = MISTAKES[mistake]
    findings = schema_runs[mistake]["findings"]
    assert any(expected in finding for finding in findings), f"{rel}: {expected!r} not in:\n" + "\n".join(findings)
    # The mistake is the only new finding: the check points at it and nothing else.
    assert len(findings) == len(schema_runs["clean"]["findings"]) + 1, findings


def test_sdk_pins_cover_every_schema():
    """requirements-infra.txt pins each SDK package the schema table imports."""
    text = (HERE.parents[1] / "requirements-infra.txt").read_text(encoding="utf-8")
    pinned = {line.split("==")[0].strip() for line in text.splitlines() if "==" in line and not line.startswith("#")}
    source = (HERE / "arm_schema.py").read_text(encoding="utf-8")
    for package in (
        "web",
        "storage",
        "cognitiveservices",
        "authorization",
        "msi",
        "applicationinsights",
        "loganalytics",
        "resource",
    ):
        assert f'"azure.mgmt.{package}' in source, package
        assert f"azure-mgmt-{package}" in pinned, f"azure-mgmt-{package} is not pinned"


def test_check_mode_exits_non_zero_on_a_finding(infra_root, infra_python, tmp_path):
    """`make infra-check` runs the same check and must fail the build on a finding."""
    script = str(HERE / "arm_schema.py")
    clean = subprocess.run(
        [str(infra_python), script, "--check", str(infra_root)], capture_output=True, text=True, check=False
    )
    assert clean.returncode == 0 and " 0 problem(s)" in clean.stdout, clean.stdout + clean.stderr
    shutil.copytree(infra_root / "infra", tmp_path / "infra")
    target = tmp_path / "infra" / "core" / "storage.bicep"
    target.write_text(target.read_text(encoding="utf-8").replace("accessTier:", "acessTier:", 1), encoding="utf-8")
    broken = subprocess.run(
        [str(infra_python), script, "--check", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "properties.acessTier: not a property" in broken.stderr
