"""The batch tests use the job tests' real Azurite, simulator and in-process pipeline.

Imported here once, so every module under tests/batch shares one Azurite and one simulator for the
session instead of starting its own.
"""

from tests.jobs.conftest import azurite, pipeline, simulator

__all__ = ["azurite", "pipeline", "simulator"]
