"""Query parameters: only declared names, checked values, one value per name, and the upstream's
query rebuilt from what was checked (shared/query_params.py)."""

from __future__ import annotations

import pytest

from shared.errors import GatewayError
from shared.query_params import encode_query, parse_query
from shared.routes import INPUT_ITEMS_QUERY, RETRIEVE_QUERY


def refused(query: bytes, declared: tuple = RETRIEVE_QUERY) -> tuple[int, str | None, str | None]:  # type: ignore[type-arg]
    with pytest.raises(GatewayError) as info:
        parse_query(query, declared)
    return info.value.status, info.value.code, info.value.param


def test_declared_values_are_parsed_and_re_encoded() -> None:
    query = (b"include%5B%5D=reasoning.encrypted_content&include[]=message.output_text.logprobs"
             b"&include_obfuscation=false&stream=true&starting_after=7")
    values = parse_query(query, RETRIEVE_QUERY)
    assert values == {"include[]": ("reasoning.encrypted_content", "message.output_text.logprobs"),
                      "include_obfuscation": False, "stream": True, "starting_after": 7}
    assert encode_query(values) == ("?include%5B%5D=reasoning.encrypted_content"
                                    "&include%5B%5D=message.output_text.logprobs"
                                    "&include_obfuscation=false&stream=true&starting_after=7")
    assert encode_query({}) == ""


def test_the_function_key_is_read_by_the_host_and_never_relayed() -> None:
    assert parse_query(b"code=secret&limit=3", INPUT_ITEMS_QUERY) == {"limit": 3}
    # The name in any case, as the host (and shared.callers) reads it.
    assert parse_query(b"CODE=secret&limit=3", INPUT_ITEMS_QUERY) == {"limit": 3}
    assert parse_query(b"%43ode=secret", ()) == {}


def test_azures_api_version_v1_is_accepted_and_not_relayed() -> None:
    # Azure's v1 spec allows ``api-version`` (v1 or preview) on every operation; clients that set
    # ``default_query={"api-version": "v1"}`` must not be refused on the routes that read a query.
    assert parse_query(b"api-version=v1&limit=3", INPUT_ITEMS_QUERY) == {"limit": 3}


@pytest.mark.parametrize("query", [b"api-version=preview", b"api-version=2024-10-21", b"api-version=",
                                   b"api-version=v1&api-version=preview"])
def test_an_api_version_the_gateway_does_not_serve_is_refused(query: bytes) -> None:
    assert refused(query, INPUT_ITEMS_QUERY) == (400, "invalid_query_parameter", "api-version")


def test_a_repeated_list_item_is_sent_once() -> None:
    query = b"include[]=file_search_call.results&include[]=file_search_call.results"
    assert parse_query(query, INPUT_ITEMS_QUERY) == {"include[]": ("file_search_call.results",)}


@pytest.mark.parametrize(("query", "code", "param"), [
    (b"limitt=1", "unknown_parameter", "limitt"),
    (b"include=file_search_call.results", "unknown_parameter", "include"),  # lists are include[]
    (b"limit=0", "invalid_query_parameter", "limit"),
    (b"limit=101", "invalid_query_parameter", "limit"),
    (b"limit=%205", "invalid_query_parameter", "limit"),
    (b"limit=5_0", "invalid_query_parameter", "limit"),
    (b"limit=99999999999999999999", "invalid_query_parameter", "limit"),
    (b"limit=1&limit=2", "invalid_query_parameter", "limit"),
    (b"order=ASC", "invalid_query_parameter", "order"),
    (b"after=", "invalid_query_parameter", "after"),
    (b"after=a%0Ab", "invalid_query_parameter", "after"),
    (b"after=" + b"a" * 257, "invalid_query_parameter", "after"),
    (b"before=%FF", "invalid_query_parameter", None),  # not UTF-8 once decoded
])
def test_input_items_query_refusals(query: bytes, code: str, param: str | None) -> None:
    assert refused(query, INPUT_ITEMS_QUERY) == (400, code, param)


@pytest.mark.parametrize(("query", "param"), [
    (b"stream=false%26stream%3Dtrue", "stream"),
    (b"stream=True", "stream"),
    (b"stream=true&stream=true", "stream"),
    (b"starting_after=-1", "starting_after"),
    (b"include_obfuscation=0", "include_obfuscation"),
    (b"include[]=everything", "include[]"),
])
def test_retrieve_query_refusals(query: bytes, param: str) -> None:
    assert refused(query) == (400, "invalid_query_parameter", param)


def test_too_many_fields_are_refused() -> None:
    assert refused(b"&".join([b"include[]=reasoning.encrypted_content"] * 101))[:2] == (400, "invalid_query_parameter")
