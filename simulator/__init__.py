"""Local Azure OpenAI v1 simulator: a real HTTP upstream for gateway tests and benchmarks.

Use ``python -m simulator`` or, in process, ``create_app(SimulatorConfig(...))``.
"""

from .app import create_app
from .config import SimulatorConfig

__all__ = ["SimulatorConfig", "create_app"]
