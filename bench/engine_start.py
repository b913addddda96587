"""Where the engine's start goes, through Ray Serve as fleet deploys it (issue 19), configs side by side.

    .venv/bin/python bench/engine_start.py [--model qwen2.5-coder-0.5b] [--configs bf16-eager,bf16-eager-inproc]

Each config (named as in `engine_roofline.py`) runs in a fresh process with a private Ray
(`address="local"`: never a Ray already running here), the way `fleet deliberate` and `serve run` bring
the engine up: imports, `ray.init`, Serve's start, then `serve.run` of fleet's engine app
(`fleet.engine.deploy.build_engine_app`) until the replica is ready, then one 16-token call, then 3
concurrent 96-token calls (the decode rate through Serve). vLLM's own timing lines from the replica's
logs (weights loaded, engine initialised: KV cache, warm-up, compile) are printed beside the phases, so
the rest of `serve.run` is process starts and vLLM's imports: the replica, its engine-core process and,
unless the worker runs in that process (`-inproc`, `EngineSpec.in_process_worker`), a worker process.
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
    r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) s": "init_engine",
}


def _busy() -> None:
    """One process that keeps a core busy, as a sandboxed test run or an agent does beside the engine."""
    while True:
        sum(i * i for i in range(10_000))


def _one(model: str, config: str, contend: int) -> dict:
    phases = {}
    import ray
    from ray import serve

    from fleet.bootstrap import resolve_model_source
    from fleet.config.engine import EngineSpec
    from fleet.engine.client import ServeLLMClient
    from fleet.engine.deploy import build_engine_app
    from fleet.engine.protocol import ChatMessage, ChatRequest

    phases["imports"] = time.perf_counter() - T0
    fields = {"in_process_worker": False, **CONFIGS[config]}
    spec = EngineSpec(model_id=model, placement_resource=None, app_name="bench", **fields)
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

    async def calls() -> tuple[float, float]:
        client = ServeLLMClient("bench", spec.deployment_name)

        async def one(i: int, tokens: int) -> int:
            msg = ChatMessage(role="user", content=f"Request {i}. Write a Python function that returns the n-th "
                              "Fibonacci number, with a docstring and tests.")
            out = await client.chat(ChatRequest(model=model, messages=[msg], max_tokens=tokens, ignore_eos=True))
            return out.completion_tokens

        t = time.perf_counter()
        await one(0, 16)
        first = time.perf_counter() - t
        phases["total_to_first_answer"] = time.perf_counter() - T0
        import multiprocessing

        busy = [multiprocessing.get_context("fork").Process(target=_busy, daemon=True) for _ in range(contend)]
        for b in busy:
            b.start()
        try:
            t = time.perf_counter()
            tokens = sum(await asyncio.gather(*(one(i, 96) for i in range(3))))
            return first, tokens / (time.perf_counter() - t)
        finally:
            for b in busy:
                b.kill()

    import asyncio

    phases["first_call"], rate = asyncio.run(calls())  # this script's own outermost edge
    return {"config": config, "phases": phases, "tok_s_3_streams": rate}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--configs", default="fp32-eager,bf16-eager,bf16-eager-inproc,bf16-eager-preload,bf16-compiled")
    p.add_argument("--contend", type=int, default=0, help="busy processes beside the engine while it decodes")
    p.add_argument("--repeat", type=int, default=1, help="rounds over the configs, in ABBA order")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print("RESULT " + json.dumps(_one(a.model, a.one, a.contend)), flush=True)
        os._exit(0)
    print(f"load before: {os.getloadavg()[0]:.2f}")
    rows = []
    names = a.configs.split(",")
    order = [c for r in range(a.repeat) for c in (names if r % 2 == 0 else names[::-1])]
    for config in order:
        out = subprocess.run([sys.executable, __file__, "--one", config, "--model", a.model, "--contend",
                              str(a.contend)], capture_output=True,
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
        print(config + ": " + ", ".join(f"{k} {v:.1f}s" for k, v in row["phases"].items())
              + f"; 3 streams x 96 forced tokens through Serve: {row['tok_s_3_streams']:.1f} tok/s", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}; contending busy processes while decoding: {a.contend}")
    import statistics

    print("| config | runs | engine ready (serve.run) | process start to first answer | 3 streams, tok/s |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        mine = [r for r in rows if r["config"] == name]
        med = {k: statistics.median(r["phases"][k] for r in mine) for k in ("serve_run_engine_ready",
                                                                            "total_to_first_answer")}
        rate = statistics.median(r["tok_s_3_streams"] for r in mine)
        print(f"| {name} | {len(mine)} | {med['serve_run_engine_ready']:.1f} s | {med['total_to_first_answer']:.1f} s "
              f"| {rate:.1f} |")


if __name__ == "__main__":
    main()
