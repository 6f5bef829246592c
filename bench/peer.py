"""The peer: LiteLLM's proxy (PyPI ``litellm[proxy]``), pointed at the same simulator.

It lives in its own venv (``.venv-litellm``, from ``bench/requirements-litellm.txt``) because its
proxy extra pins web-stack versions of its own. Configured as fairly as we know how: one uvicorn
worker (as our host), its openai-compatible provider straight at the simulator's ``/openai/v1``,
no database, no master key (our local host checks no keys either), the access log off (ours is
off), and the model cost map read from the package (``LITELLM_LOCAL_MODEL_COST_MAP``) because
fetching it at start-up needs the internet. If it cannot be installed or started, the reason is
recorded in the results instead of a number.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from devhost.processes import ManagedProcess

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-litellm"
REQUIREMENTS = Path(__file__).with_name("requirements-litellm.txt")


def executable() -> Path:
    return VENV / "bin" / "litellm"


def availability() -> dict[str, Any]:
    """Whether the peer can run here, its version, and if not, exactly why."""
    binary = executable()
    if not binary.exists():
        return {
            "available": False,
            "reason": f"{binary.relative_to(ROOT)} not found: create it with `python3 -m venv .venv-litellm && "
                      f".venv-litellm/bin/pip install -r {REQUIREMENTS.relative_to(ROOT)}` (make bench does this)",
        }
    try:
        version = subprocess.run(
            [str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return {"available": False, "reason": f"the LiteLLM venv is broken: {exc}"}
    return {"available": True, "version": version}


def write_config(folder: Path, upstream: str, api_key: str, model: str) -> tuple[Path, Path]:
    """The proxy config (one model routed to the simulator) and a quiet uvicorn logging config."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "litellm-config.json"  # YAML is a superset of JSON: no PyYAML needed here
    config.write_text(json.dumps({
        "model_list": [{
            "model_name": model,
            "litellm_params": {"model": f"openai/{model}", "api_base": upstream, "api_key": api_key},
        }],
        "litellm_settings": {"drop_params": True, "telemetry": False},
    }, indent=2))
    logging_config = folder / "litellm-logging.json"
    logging_config.write_text(json.dumps({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {"uvicorn.access": {"level": "WARNING", "propagate": False}},
    }))
    return config, logging_config


def process(port: int, upstream: str, api_key: str, model: str, folder: Path) -> ManagedProcess:
    """An unstarted ManagedProcess running the proxy on 127.0.0.1:``port``."""
    config, logging_config = write_config(folder, upstream, api_key, model)
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("AZURE_", "OPENAI_", "LITELLM_"))  # nothing of ours leaks into the peer
    }
    env.update({
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "PYTHONUNBUFFERED": "1",
    })
    argv = [str(executable()), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1", "--log_config", str(logging_config)]
    return ManagedProcess("litellm", argv, cwd=folder, env=env, log_path=folder / "litellm.log")
