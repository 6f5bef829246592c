"""Azure's OpenAPI 3.0 description of the v1 API, as JSON Schema validators for contract tests.

The document lives outside the repository (read-only reference data, ``../shared/specs/`` beside
the checkout). OpenAPI 3.0 schemas are JSON Schema with one dialect difference that matters here:
``nullable: true`` instead of a ``null`` type, rewritten below. ``discriminator`` is not JSON
Schema; callers pick the mapped subtype themselves (:meth:`Spec.event_schema`), which is stricter
than trying every subtype. ``format`` values (``unixtime``, ``int32``) are annotations only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT.parent / "shared" / "specs" / "azure-openai-v1.yaml"


def without_nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema: the schema or ``null``. Applied to the whole
    schema, ``allOf`` included, which is how the document uses it (``error`` is an ``allOf`` of
    ``OpenAI.ResponseError`` marked nullable); adding ``null`` to ``type`` alone would still fail it."""
    if isinstance(node, list):
        return [without_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: without_nullable(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is not True:
        return converted
    return {"anyOf": [converted, {"type": "null"}]}


@dataclass(frozen=True, eq=False)  # hashed by identity: validators are cached per Spec
class Spec:
    """The converted document; validators reference its ``components`` by JSON pointer."""

    document: dict[str, Any]

    @classmethod
    def load(cls, path: Path = SPEC_PATH) -> Spec:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with path.open(encoding="utf-8") as stream:
            raw = yaml.load(stream, Loader=loader)  # a safe loader either way
        return cls({"paths": raw["paths"], "components": {"schemas": without_nullable(raw["components"]["schemas"])}})

    @property
    def schemas(self) -> dict[str, Any]:
        schemas: dict[str, Any] = self.document["components"]["schemas"]
        return schemas

    def response_schema(self, path: str, method: str, status: str = "200",
                        content_type: str = "application/json") -> dict[str, Any]:
        """The schema the document gives for one operation's response."""
        content = self.document["paths"][path][method]["responses"][status]["content"][content_type]
        return without_nullable(content["schema"])  # type: ignore[no-any-return]

    def event_schema(self, event_type: str) -> dict[str, Any] | None:
        """The Responses stream event subtype the discriminator maps ``event_type`` to (None: unknown)."""
        mapping = self.schemas["OpenAI.ResponseStreamEvent"]["discriminator"]["mapping"]
        ref = mapping.get(event_type)
        return {"$ref": ref} if ref else None

    def errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        """Every way ``instance`` breaks ``schema`` (empty: it conforms), as readable lines."""
        validator = _validator(self, _freeze(schema))
        found = list(validator.iter_errors(instance))
        if not found:
            return []
        best = best_match(found)
        lines = [f"{'/'.join(map(str, best.absolute_path)) or '(root)'}: {best.message[:300]}"]
        lines += [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
                  for e in found if e is not best]
        return lines


def _freeze(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True)


@cache
def _validator(spec: Spec, schema_json: str) -> Draft202012Validator:
    schema = {**json.loads(schema_json), "components": spec.document["components"]}
    return Draft202012Validator(schema)


def load_spec_or_skip() -> Spec:
    """Azure's spec from ../shared/specs/; without it a local run skips, saying why, and CI fails."""
    if not SPEC_PATH.is_file():
        message = f"Azure's OpenAPI description is missing: expected ../shared/specs/{SPEC_PATH.name} beside the repo"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):  # the Makefile's rule
            pytest.fail(message)
        pytest.skip(message)
    return Spec.load()
