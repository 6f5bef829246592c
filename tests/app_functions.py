"""The function app's functions, indexed once per test session.

``FunctionApp.get_functions()`` refuses to run twice in one process (it re-checks names against its
own cache), so every test that needs the metadata shares this one result.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def app_functions() -> dict[str, Any]:
    import function_app

    return {fn.get_function_name(): fn for fn in function_app.app.get_functions()}
