"""Fixtures for the devhost tests: one running sample stack shared by the HTTP and queue tests.

Package-scoped, so the stack is gone before the rest of a full test run goes on.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from devhost.stack import Stack
from tests.devhost.helpers import ROUTE_PREFIX, make_stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The sample app behind a real ``python -m devhost`` with its own Azurite."""
    running = make_stack(tmp_path_factory.mktemp("devhost-logs"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="package")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{stack.host_url}/{ROUTE_PREFIX}", timeout=30) as http:
        yield http
