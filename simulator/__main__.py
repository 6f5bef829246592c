"""CLI: ``python -m simulator --host 127.0.0.1 --port 7072 [--ttft-ms 300 ...]``.

Flags are generated from `SimulatorConfig` fields, so every setting has a flag, an environment
variable (``SIM_<FIELD>``) and a `/_sim/config` key of the same name.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from .config import FIELD_TYPES, SimulatorConfig, coerce, env_overrides
from .server import serve


def parse_args(argv: list[str] | None = None) -> SimulatorConfig:
    defaults = SimulatorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Local Azure OpenAI v1 simulator (routes under /openai/v1/ and /v1/).",
    )
    for f in dataclasses.fields(SimulatorConfig):
        default = getattr(defaults, f.name)
        shown = ",".join(default) if isinstance(default, list) else default
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            metavar=FIELD_TYPES[f.name].split(" ")[0].upper(),
            help=f"{f.metadata.get('help', '')} (env SIM_{f.name.upper()}; default {shown})",
        )
    args = parser.parse_args(argv)
    try:
        values = env_overrides()
        for name in FIELD_TYPES:
            raw = getattr(args, name)
            if raw is not None:
                values[name] = coerce(name, raw)
    except ValueError as exc:
        parser.error(str(exc))
    return dataclasses.replace(defaults, **values)


def main(argv: list[str] | None = None) -> None:
    serve(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
