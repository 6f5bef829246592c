"""web/app.js's pure helpers under node's test runner (app_helpers.test.mjs): no browser, no stack."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.browser.conftest import ROOT

TESTS = Path(__file__).with_name("app_helpers.test.mjs")


def test_app_helpers(node: str) -> None:
    done = subprocess.run([node, "--test", str(TESTS)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
