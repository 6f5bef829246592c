"""The route table: what it names exists and is called as the table says, and the app registers
exactly the table (routes, methods, auth levels, function names)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from starlette.requests import Request

from shared import openapi
from shared.http import path_param
from shared.routes import API_ROUTES, PUBLIC_ROUTES, ApiRoute, resolve
from tests.app_functions import app_functions

OPERATIONS = [(route, method, op) for route in API_ROUTES for method, op in route.operations.items()]


@pytest.mark.parametrize(("route", "method", "op"), OPERATIONS,
                         ids=[f"{method} {route.path}" for route, method, _ in OPERATIONS])
def test_every_operation_resolves_to_a_function_called_as_the_table_says(route: ApiRoute, method: str,
                                                                         op: Any) -> None:
    handler = resolve(op.handler)
    parameters = list(inspect.signature(handler).parameters)
    if op.takes == "nothing":
        assert not inspect.iscoroutinefunction(handler) and parameters == []
    else:
        assert inspect.iscoroutinefunction(handler) and len(parameters) == (3 if op.takes == "id_query" else 2)
        takes_id = op.takes in ("id", "id_query")
        assert (route.parameter is not None) == takes_id, "an id comes from the route's one parameter"
    assert bool(op.query) == (op.takes in ("id_query", "query")), "only query operations declare query parameters"


def test_every_public_handler_takes_the_request() -> None:
    for route in PUBLIC_ROUTES:
        handler = resolve(route.handler)
        assert inspect.iscoroutinefunction(handler) and len(inspect.signature(handler).parameters) == 1


def test_the_app_registers_exactly_the_table() -> None:
    http = {name: fn.get_trigger().get_dict_repr() for name, fn in app_functions().items()
            if fn.get_trigger().get_dict_repr()["type"] == "httpTrigger"}
    expected = {r.function: (r.path, "FUNCTION") for r in API_ROUTES}
    expected |= {r.function: (r.path, "ANONYMOUS") for r in PUBLIC_ROUTES}
    assert {name: (t["route"], str(t["authLevel"]).rsplit(".", 1)[-1].upper()) for name, t in http.items()} == expected
    for route in PUBLIC_ROUTES:
        assert {str(m).rsplit(".", 1)[-1].upper() for m in http[route.function]["methods"]} == set(route.methods)
    # API routes take every method: the app answers a wrong one (405) and CORS preflights itself.
    for route in API_ROUTES:
        methods = {str(m).rsplit(".", 1)[-1].upper() for m in http[route.function]["methods"]}
        assert methods >= {*route.operations, "OPTIONS"} and len(methods) == 7


def test_the_openapi_document_lists_the_table_and_every_schema_it_names() -> None:
    document = openapi.build()
    documented = {r.path for r in API_ROUTES} | {r.path for r in PUBLIC_ROUTES if r.summary}
    assert set(document["paths"]) == {f"/{path}" for path in documented}
    for route in API_ROUTES:
        assert set(document["paths"][f"/{route.path}"]) == {m.lower() for m in route.operations}
    names = {op.request_schema for _, _, op in OPERATIONS} | {op.ok_schema for _, _, op in OPERATIONS}
    assert names - {None} <= set(document["components"]["schemas"])


def _request(path: str, path_params: dict[str, str] | None = None) -> Request:
    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    if path_params is not None:
        scope["path_params"] = path_params
    return Request(scope)


def _route(path: str) -> ApiRoute:
    return next(r for r in API_ROUTES if r.path == path)


def test_path_parameter_from_the_host_or_from_the_url() -> None:
    results = _route("v1/embeddings/jobs/{job_id}/results")
    assert path_param(_request("/api/x", {"job_id": "ejob_1"}), results) == "ejob_1"
    # Hosts that do not fill path_params (the worker's proxy): the template is matched against the URL.
    assert path_param(_request("/api/v1/embeddings/jobs/ejob_2/results"), results) == "ejob_2"
    assert path_param(_request("/custom/prefix/v1/embeddings/jobs/ejob_3/results/"), results) == "ejob_3"
    item = _route("v1/responses/{response_id}")
    assert path_param(_request("/api/v1/responses/resp_9"), item) == "resp_9"
