"""The Serve application builder: `import_path: fleet.serve_app:build_app`, `args:` = `FleetConfig`.

`serve run serve_configs/cpu.yaml` brings up the engine deployment; drivers, the CLI
(`fleet deliberate --address auto --config serve_configs/cpu.yaml`) and jobs then attach to it.
The args are parsed here, once, into the same `FleetConfig` the driver uses.
"""

from __future__ import annotations

from typing import Any

from fleet.config.fleet import FleetConfig
from fleet.driver import resolve_model_source
from fleet.engine.serve_llm import build_engine_app
from fleet.errors import InvalidRequestError


def build_app(args: dict[str, Any]):
    config = FleetConfig.model_validate(args)
    if config.engine.kind == "inproc_fake":
        raise InvalidRequestError("engine kind 'inproc_fake' has nothing to deploy; use 'vllm' or 'fake'")
    return build_engine_app(config.engine, resolve_model_source(config.engine))
