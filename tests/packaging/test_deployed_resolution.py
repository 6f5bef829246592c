"""requirements.txt resolves for the deployed Python (3.13, Linux x86_64) from wheels alone.

This is what the remote build does; a package without a wheel for the target, or a marker mistake,
fails here instead of in ``azd up``. Needs the package index: when it cannot be reached the tests
skip locally but fail under CI (``CI`` set), and they fail likewise without a Python 3.13.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.packaging.requirements_file import applies_to_deployed, deployed, floor
from tests.packaging.resolve import Resolution, python313, resolve

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{reason} (CI must resolve the deployed requirements)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def resolutions() -> tuple[Resolution, Resolution]:
    """(as deployed, with Requires-Python ignored): resolved side by side to keep the test short."""
    python = python313()
    if python is None:
        _unavailable("no Python 3.13 with pip found (see the Makefile's PY313)")
    with ThreadPoolExecutor(2) as pool:
        target = pool.submit(resolve, python)
        unconstrained = pool.submit(resolve, python, ignore_requires_python=True)
        result = target.result(), unconstrained.result()
    for resolution in result:
        if resolution.unreachable:
            _unavailable(f"the package index could not be reached:\n{resolution.output[-1500:]}")
    return result


def test_requirements_resolve_for_the_deployed_python_from_wheels_alone(
        resolutions: tuple[Resolution, Resolution]) -> None:
    target, _ = resolutions
    assert target.ok, f"pip could not resolve requirements.txt for CPython 3.13 manylinux:\n{target.output[-3000:]}"
    missing = sorted(name for name in deployed() if name not in target.installed)
    assert not missing, f"declared but not resolved for the deployed Python: {missing}"


def test_no_declared_package_is_held_back_by_the_deployed_python(
        resolutions: tuple[Resolution, Resolution]) -> None:
    """A release range whose newest versions do not support Python 3.13 pins the app to an old
    release forever, silently; an environment marker per Python range says what is meant."""
    target, unconstrained = resolutions
    assert target.ok and unconstrained.ok, (target.output[-2000:], unconstrained.output[-2000:])
    held_back = {name: f"{target.version(name)} on 3.13, {unconstrained.version(name)} allowed by requirements.txt"
                 for name in deployed() if target.version(name) != unconstrained.version(name)}
    assert not held_back, (
        "the newest release requirements.txt allows does not install on Python 3.13, so the deployed app "
        f"gets an older one: {held_back}. Use environment markers (python_version) to give 3.13 its own range.")


def test_declared_floors_satisfy_what_the_resolved_packages_require(
        resolutions: tuple[Resolution, Resolution]) -> None:
    """``aiohttp>=3.11`` next to ``openai[aiohttp]`` (which needs a newer aiohttp) promises an
    install that pip can never produce: every floor we declare must be one the packages we declare
    (with the extras we request) accept. Their own dependencies' pins are theirs to keep in step."""
    target, _ = resolutions
    assert target.ok, target.output[-2000:]
    declared = deployed()
    conflicts: list[str] = []
    for name, item in target.installed.items():
        if name not in declared:
            continue
        extras = item.get("requested_extras") or []
        for raw in item["metadata"].get("requires_dist") or []:
            needed = Requirement(raw)
            ours = declared.get(canonicalize_name(needed.name))
            if ours is None or not any(applies_to_deployed(needed, extra) for extra in ["", *extras]):
                continue
            lowest = floor(ours.requirement)
            if lowest is None:
                conflicts.append(f"{ours.requirement} (line {ours.line}) has no floor")
            elif not needed.specifier.contains(lowest, prereleases=True):
                conflicts.append(f"{ours.requirement} (line {ours.line}) admits {lowest}, but "
                                 f"{item['metadata']['name']} requires {needed}")
    assert not conflicts, "\n".join(sorted(set(conflicts)))
