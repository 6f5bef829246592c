"""One vocabulary of errors: the README's table, the code and ``shared/errors`` name the same codes."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from shared import errors
from shared.errors import VOCABULARY, GatewayError

ROOT = Path(__file__).resolve().parents[2]
_BACKTICKED = re.compile(r"`([a-z_]+)`")
# The calls that answer a caller with a literal code, and the status each fixes (None: given in the call).
_STATUS = {"GatewayError": None, "bad_request": 400, "unprocessable": 422, "not_found": 404,
           "response_not_found": 404, "require": 404}


def _readme_rows() -> list[tuple[str, set[str]]]:
    """(status cell, codes in the code cell) for each row of the README's "### Errors" table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n### Errors\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| situation")]
    cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]
    return [(cell[1], set(_BACKTICKED.findall(cell[-1]))) for cell in cells if len(cell) >= 3]


def test_the_readme_table_lists_exactly_the_vocabulary() -> None:
    rows = _readme_rows()
    documented = set().union(*(codes for _, codes in rows))
    assert documented - set(VOCABULARY) == set(), "codes in the README but not in shared/errors"
    assert set(VOCABULARY) - documented == set(), "codes in shared/errors but not in the README"


def test_the_readme_table_gives_each_code_its_status() -> None:
    for status_cell, codes in _readme_rows():
        status = re.match(r"\d{3}", status_cell)
        if status is None:  # the upstream's own status
            continue
        for code in codes:
            assert VOCABULARY[code].status == int(status.group()), code


def _source_files() -> list[Path]:
    return [*sorted((ROOT / "shared").rglob("*.py")), *sorted((ROOT / "blueprints").rglob("*.py")),
            ROOT / "function_app.py"]


def _literal_codes(path: Path) -> list[tuple[str, int | None, str]]:
    """(builder, status if the call fixes one, code) for each call passing a literal ``code=``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        code = next((kw.value.value for kw in node.keywords if kw.arg == "code"
                     and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)), None)
        if code is None:
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if name not in _STATUS:  # e.g. a job row's error code, not an HTTP answer
            continue
        status = _STATUS[name]
        if name == "GatewayError" and node.args and isinstance(node.args[0], ast.Constant):
            first = node.args[0].value
            status = first if isinstance(first, int) else None
        found.append((name, status, code))
    return found


def test_every_code_the_code_answers_with_is_in_the_vocabulary_with_its_status() -> None:
    seen = 0
    for path in _source_files():
        for name, status, code in _literal_codes(path):
            seen += 1
            where = f"{path.relative_to(ROOT)}: {name}(code={code!r})"
            assert code in VOCABULARY, f"{where} is not in shared/errors' VOCABULARY"
            if status is not None:
                assert VOCABULARY[code].status == status, where
    assert seen > 0  # the scan found the call sites it checks


BUILT = [
    errors.invalid_json("m"), errors.missing_parameter("model"), errors.invalid_value("n", "bad"),
    errors.too_many_inputs(2048, 2049), errors.mcp_server_not_allowed("https://x", "tools[0].server_url"),
    errors.model_not_found("m"), errors.response_not_found("resp_1"), errors.method_not_allowed("PUT", ("GET",)),
    errors.too_large(10), errors.ambiguous_key("two keys"), errors.origin_not_allowed("o"),
    errors.caller_limit_too_small(10, 5), errors.caller_over_limit(5, 1.5), errors.rate_limited(0.2),
    errors.internal_error(), errors.misconfigured("x"), errors.upstream_unreachable("d"),
    errors.upstream_timeout("d"), errors.upstream_auth_failed(401, "d"), errors.stream_incomplete(),
    errors.ownership_unavailable(5), errors.job_storage_unavailable(5), errors.max_output_tokens_required(),
    errors.job_not_found("ejob_1"), errors.job_not_succeeded("failed", ""),
    errors.job_not_cancellable("succeeded"),
]


@pytest.mark.parametrize("error", BUILT, ids=[str(e.code) for e in BUILT])
def test_each_builder_answers_with_its_vocabulary_entry(error: GatewayError) -> None:
    assert error.code is not None
    kind = VOCABULARY[error.code]
    assert (error.status, error.type) == (kind.status, kind.type)
    body = json.loads(error.to_json())
    assert body == {"error": {"message": error.message, "type": kind.type, "param": error.param, "code": error.code}}


def test_a_429_carries_both_retry_hints() -> None:
    for error in (errors.rate_limited(0.2), errors.caller_over_limit(5, 1.5)):
        assert error.status == 429
        assert error.headers["retry-after"] == str(max(1, -(-int(error.headers["retry-after-ms"]) // 1000)))


def test_the_sse_error_event_carries_the_same_fields_both_sse_flavours_read() -> None:
    event = errors.sse_error_event(errors.stream_incomplete())
    assert event.startswith(b"event: error\ndata: ") and event.endswith(b"\n\n")
    data = json.loads(event.split(b"data: ", 1)[1])
    assert data["type"] == "error" and data["error"]["code"] == data["code"] == "upstream_stream_incomplete"


def _imports(path: Path) -> set[str]:
    """Modules imported at run time (imports under ``if TYPE_CHECKING:`` only name types)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_the_http_adapter_needs_only_the_errors_package_for_errors() -> None:
    assert "shared.upstream" not in _imports(ROOT / "shared" / "http.py")


def test_the_errors_package_depends_on_no_gateway_module() -> None:
    for path in (ROOT / "shared" / "errors").glob("*.py"):
        used = {m for m in _imports(path) if m.startswith("shared.") and not m.startswith("shared.errors")}
        assert used <= {"shared.retry"}, (path.name, used)
