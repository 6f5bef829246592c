"""Fixtures for the simulator's own tests: one real simulator process per session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from simulator.harness import SimulatorProcess


@pytest.fixture(scope="session")
def sim_process() -> Iterator[SimulatorProcess]:
    with SimulatorProcess.start() as sim:
        yield sim
        # Scripted aborts and disconnects are normal here; a traceback in the server log is not.
        log = sim.server_log()
        assert "Traceback" not in log, log


@pytest.fixture
def sim(sim_process: SimulatorProcess) -> Iterator[SimulatorProcess]:
    """The shared simulator, back to its start config with empty stats, faults and store."""
    sim_process.reset()
    yield sim_process
    sim_process.reset()


@pytest.fixture
def client(sim: SimulatorProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.api_url, api_key="test-key", max_retries=0, timeout=10.0) as c:
        yield c
