"""Where the engine's start goes, through Ray Serve as fleet deploys it (issue 19), configs side by side.

    .venv/bin/python bench/engine_start.py [--model qwen2.5-coder-0.5b] [--configs fp32-eager,bf16-eager,bf16-compiled]

Each config runs in a fresh process with a private Ray (`address="local"`: never a Ray already running
here), the way `fleet deliberate` and `serve run` bring the engine up: imports, `ray.init`, Serve's start,
then `serve.run` of fleet's engine app (`fleet.engine.serve_llm.build_engine_app`) until the replica is
ready, then one 16-token call. vLLM's own timing lines from the replica's logs (weights loaded, engine
initialised: KV cache, warm-up, compile) are printed beside the phases, so the rest of `serve.run` is
the replica's process start and vLLM's imports (twice: the replica, then its engine-core process).
Leaves out: converting the model (once per machine, `fleet prepare-model`), the ingress and coordinator.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

from engine_roofline import CONFIGS  # the same named engine configs

T0 = time.perf_counter()
VLLM_LINES = {  # vLLM's log line -> phase name (seconds in group 1)
    r"Loading weights took ([\d.]+) seconds": "weights",
    r"Model loading took [\d.]+ GiB (?:memory )?and ([\d.]+) seconds": "model_load",
    r"torch.compile takes ([\d.]+) s in total": "compile",
    r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) seconds": "init_engine",
}


def _one(model: str, config: str) -> dict:
    phases = {}
    import ray
    from ray import serve

    from fleet.config.engine import EngineSpec
    from fleet.driver import resolve_model_source
    from fleet.engine.protocol import ChatMessage, ChatRequest
    from fleet.engine.serve_llm import ServeLLMClient, build_engine_app

    phases["imports"] = time.perf_counter() - T0
    dtype, compiled, preload = CONFIGS[config]
    spec = EngineSpec(model_id=model, dtype=dtype, compile=compiled, preload=preload, placement_resource=None,
                      app_name="bench")
    source = resolve_model_source(spec)
    t = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=True,
             runtime_env={"env_vars": {"RAY_enable_metrics_collection": "0"}})
    phases["ray_init"] = time.perf_counter() - t
    t = time.perf_counter()
    serve.start(http_options={"host": "127.0.0.1", "port": 0})
    phases["serve_start"] = time.perf_counter() - t
    t = time.perf_counter()
    serve.run(build_engine_app(spec, source), name="bench", route_prefix=None)
    phases["serve_run_engine_ready"] = time.perf_counter() - t

    async def call() -> float:
        client = ServeLLMClient("bench", spec.deployment_name)
        t = time.perf_counter()
        await client.chat(ChatRequest(model=model, messages=[ChatMessage(role="user", content="Say hi.")],
                                      max_tokens=16))
        return time.perf_counter() - t

    import asyncio

    phases["first_call"] = asyncio.run(call())  # this script's own outermost edge
    phases["total_to_first_answer"] = time.perf_counter() - T0
    return {"config": config, "phases": phases}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--configs", default="fp32-eager,bf16-eager,bf16-compiled")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print("RESULT " + json.dumps(_one(a.model, a.one)), flush=True)
        os._exit(0)
    print(f"load before: {os.getloadavg()[0]:.2f}")
    rows = []
    for config in a.configs.split(","):
        out = subprocess.run([sys.executable, __file__, "--one", config, "--model", a.model], capture_output=True,
                             text=True, timeout=900, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
        text = out.stdout + out.stderr
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"{config} failed (exit {out.returncode}):\n{text[-3000:]}")
        row = json.loads(line.removeprefix("RESULT "))
        for pattern, name in VLLM_LINES.items():
            found = re.findall(pattern, text)
            if found:
                row["phases"][f"vllm_{name}"] = sum(float(x) for x in found)
        rows.append(row)
        print(config + ": " + ", ".join(f"{k} {v:.1f}s" for k, v in row["phases"].items()), flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
