"""Reading ``requirements.txt`` the way pip does for the deployed Python, and nothing more.

The deployed app runs on Python 3.13 on Linux x86_64 (Flex Consumption), while local tools run on
whatever Python the developer has: every check evaluates environment markers for the deployed
target, never for the interpreter running the test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements.txt"

# The marker environment of the deployed worker: CPython 3.13 on Linux x86_64.
DEPLOYED_PYTHON = "3.13"
DEPLOYED_ENVIRONMENT = {
    "implementation_name": "cpython",
    "implementation_version": "3.13.0",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.13.0",
    "python_version": DEPLOYED_PYTHON,
    "sys_platform": "linux",
}


@dataclass(frozen=True)
class Declared:
    """One line of requirements.txt: the requirement and where it is."""

    requirement: Requirement
    line: int

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)


def applies_to_deployed(requirement: Requirement, extra: str = "") -> bool:
    """Does this requirement's marker hold on the deployed Python (optionally for one extra)?"""
    if requirement.marker is None:
        return True
    return requirement.marker.evaluate({**DEPLOYED_ENVIRONMENT, "extra": extra})


def declared(path: Path = REQUIREMENTS) -> list[Declared]:
    """Every requirement line of ``path`` (comments, blank lines and pip options skipped)."""
    out: list[Declared] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        out.append(Declared(Requirement(line), number))
    return out


def deployed(path: Path = REQUIREMENTS) -> dict[str, Declared]:
    """The requirements that apply on the deployed Python, by canonical name."""
    return {d.name: d for d in declared(path) if applies_to_deployed(d.requirement)}


def floor(requirement: Requirement) -> Version | None:
    """The lowest version a requirement admits by its own words (``>=``, ``==``, ``~=``), if any."""
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=", "===")]
    return max(floors) if floors else None
