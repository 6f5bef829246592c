"""Fuzz the HTTP API from its own OpenAPI document: no 5xx from the gateway, every error in OpenAI's shape.

Driven through schemathesis' strategies with hypothesis directly (one test per operation), which
keeps the suite independent of schemathesis' pytest plugin.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devhost.stack import Stack

NO_REQUEST_ID = {"/health", "/openapi.json"}


@pytest.fixture(scope="module")
def api_schema(stack: Stack):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_url(f"{stack.host_url}/api/openapi.json")


def test_openapi_document_is_served(stack: Stack) -> None:
    document = httpx.get(f"{stack.host_url}/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert "/v1/chat/completions" in document["paths"]


def test_api_never_fails_with_a_5xx_and_errors_are_openai_shaped(api_schema, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 9
    seen: dict[str, set[int]] = {}

    @given(data=st.data())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(data: st.DataObject) -> None:
        for operation in operations:
            case = data.draw(operation.as_strategy())
            response = case.call(base_url=f"{stack.host_url}/api", timeout=30)
            label = f"{case.method} {case.path}"
            seen.setdefault(label, set()).add(response.status_code)
            # The upstream is the simulator, which answers every well-formed request; a 5xx would be ours.
            assert response.status_code < 500, f"{label} -> {response.status_code}: {response.text[:300]}"
            assert case.path in NO_REQUEST_ID or response.headers.get("x-request-id")
            if response.status_code >= 400:
                error = response.json()["error"]
                assert set(error) >= {"message", "type", "param", "code"} and error["message"]
            # Function keys are the platform's to enforce; the local host, like Core Tools, does not.
            excluded = [schemathesis.checks.not_a_server_error, schemathesis.checks.ignored_auth]
            if (case.method, case.path) == ("POST", "/v1/files"):
                # The document can only say "a file"; a schema-valid upload of random bytes is rightly
                # refused as an invalid batch file (400), which this check would take for a mistake.
                excluded.append(schemathesis.checks.positive_data_acceptance)
            if "after" in (case.query or {}):
                # A list's cursor must be the id of one of the caller's own objects; a random but
                # schema-valid id is rightly 400 invalid_query_parameter (revealing nothing).
                excluded.append(schemathesis.checks.positive_data_acceptance)
            case.validate_response(response, excluded_checks=excluded)

    fuzz()
    assert len(seen) == len(operations)
