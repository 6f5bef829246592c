"""Functions route templates compiled to matchers (no server needed)."""

from __future__ import annotations

import pytest

from devhost.routing import RouteTemplateError, compile_route

GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("v1/chat/completions", "/api/v1/chat/completions", {}),
        ("v1/chat/completions", "/api/v1/chat/completions/", {}),
        ("v1/chat/completions", "/API/V1/Chat/Completions", {}),
        ("v1/chat/completions", "/api/v1/chat", None),
        ("items/{id}", "/api/items/abc", {"id": "abc"}),
        ("items/{id:int}", "/api/items/-7", {"id": "-7"}),
        ("items/{id:int}", "/api/items/x7", None),
        ("items/{id:int:min(1)}", "/api/items/0", None),
        ("items/{id:int:range(1,9)}", "/api/items/9", {"id": "9"}),
        ("items/{id:guid}", f"/api/items/{GUID}", {"id": GUID}),
        ("items/{flag:bool}", "/api/items/True", {"flag": "True"}),
        ("items/{code:length(3)}", "/api/items/abcd", None),
        ("items/{code:alpha:maxlength(4)}", "/api/items/abcd", {"code": "abcd"}),
        ("items/{code:regex(^a.c$)}", "/api/items/abc", {"code": "abc"}),
        ("files/{*rest}", "/api/files/a/b/c.txt", {"rest": "a/b/c.txt"}),
        ("files/{*rest}", "/api/files", {}),
        ("pages/{page=1}", "/api/pages", {"page": "1"}),
        ("pages/{page?}", "/api/pages/3", {"page": "3"}),
        ("pages/{page?}", "/api/pages", {}),
        ("docs/{name}.{ext}", "/api/docs/readme.md", {"name": "readme", "ext": "md"}),
    ],
)
def test_templates_match_like_functions(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert compile_route(template, "api").match(path) == expected


def test_empty_route_prefix() -> None:
    route = compile_route("health", "")
    assert route.path == "/health"
    assert route.match("/health") == {}
    assert route.match("/api/health") is None


def test_precedence_prefers_literals_then_constraints_then_catch_all() -> None:
    ranks = {t: compile_route(t, "api").precedence for t in ("items/latest", "items/{id:int}", "items/{id}", "{*all}")}
    assert sorted(ranks, key=ranks.__getitem__) == ["items/latest", "items/{id:int}", "items/{id}", "{*all}"]


@pytest.mark.parametrize("template", ["a/{x:nonsense}", "a/{x}/{x}", "a/{x?}/b", "a/{1x}"])
def test_bad_templates_are_rejected(template: str) -> None:
    with pytest.raises(RouteTemplateError):
        compile_route(template, "api")


def test_binding_expressions_resolve_app_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from devhost.discovery import resolve_setting_expressions

    monkeypatch.setenv("JOBS_QUEUE_FOR_TEST", "work-items")
    assert resolve_setting_expressions("%JOBS_QUEUE_FOR_TEST%") == "work-items"
    assert resolve_setting_expressions("plain-name") == "plain-name"
    monkeypatch.delenv("JOBS_QUEUE_FOR_TEST")
    with pytest.raises(ValueError, match="JOBS_QUEUE_FOR_TEST"):
        resolve_setting_expressions("%JOBS_QUEUE_FOR_TEST%")
