"""The CPU engine against the machine's limit (issue 19): memory bandwidth, then tok/s per dtype and mode.

    .venv/bin/python bench/engine_roofline.py [--model qwen2.5-coder-0.5b] [--streams 1,3,12,32]
                                              [--configs fp32-eager,bf16-eager,bf16-compiled,fp32-compiled]

One run measures, side by side:
1. the machine's memory read bandwidth (numpy on one thread, torch on every core; the larger counts);
2. for each engine config, in a fresh process each (one engine per process): the engine's start (from
   the process's first line, imports included, to the engine answering) and its decode rate at 1, 3, 12
   and 32 concurrent streams of 96 forced tokens (`ignore_eos`), after a warm-up;
3. beside each rate, the bandwidth ceiling: a decode step reads every weight once, so N streams cannot
   beat N x bandwidth / weight bytes (the converted folder's safetensors, in that dtype). At one stream
   the ratio says how close the engine is to the machine; at 12 and 32 streams the engine is compute-bound
   and the ratio is only context.

The engine runs as fleet's does (`EngineSpec`: threads bound to every core, none reserved, chunked
prefill off, prefix caching on, vLLM's multiprocessing mode as `ray.serve.llm` uses it) but offline,
without Serve, so the numbers are the engine's own; threads pinned one per core (vLLM's way, fastest
on an idle machine) unless a config says nobind. bf16-compiled is started twice: the second start reads
vLLM's persistent compile cache (~/.cache/vllm), which is what every start after a machine's first sees.
Leaves out: Serve's own start (`engine_start.py`), prompts longer than ~40 tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
MAX_TOKENS = 96
CONFIGS: dict[str, dict] = {  # name -> EngineSpec fields (see its descriptions); "-nobind": threads not pinned
    "fp32-eager": {"dtype": "float32", "compile": False, "cpu_bind_threads": True},
    "bf16-eager": {"dtype": "bfloat16", "compile": False, "cpu_bind_threads": True},
    "bf16-eager-nobind": {"dtype": "bfloat16", "compile": False, "cpu_bind_threads": False},
    "bf16-eager-preload": {"dtype": "bfloat16", "compile": False, "preload": True, "cpu_bind_threads": True},
    "bf16-eager-inproc": {"dtype": "bfloat16", "compile": False, "in_process_worker": True},
    "bf16-eager-inproc-1thread": {"dtype": "bfloat16", "compile": False, "in_process_worker": True, "cpu_threads": 1},
    "bf16-eager-inproc-passive": {"dtype": "bfloat16", "compile": False, "in_process_worker": True,
                                  "env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
    "w8a8-eager": {"dtype": "bfloat16", "compile": False, "quantization": "w8a8", "cpu_bind_threads": True},
    "w8a8-eager-nobind": {"dtype": "bfloat16", "compile": False, "quantization": "w8a8", "cpu_bind_threads": False},
    "bf16-compiled": {"dtype": "bfloat16", "compile": True, "cpu_bind_threads": True},
    "fp32-compiled": {"dtype": "float32", "compile": True, "cpu_bind_threads": True},
}


def bandwidth_gbs(gib: float = 1.0, repeat: int = 5) -> dict[str, float]:
    """Memory read bandwidth, GB/s: the best of `repeat` sums over a `gib` GiB array (far beyond cache)."""
    import numpy as np
    import torch

    n = int(gib * (1 << 30)) // 4
    a = np.ones(n, dtype=np.float32)
    t = torch.ones(n, dtype=torch.float32)
    out = {}
    for name, fn in (("numpy_1thread", lambda: float(a.sum())), ("torch_all_cores", lambda: float(t.sum()))):
        fn()
        best = min(_timed(fn) for _ in range(repeat))
        out[name] = n * 4 / best / 1e9
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def weight_bytes(folder: Path) -> int:
    """Bytes one decode step reads: every tensor of the folder but the input embeddings, of which a step
    reads one row per token (the converted folders keep `lm_head` apart: `tie_word_embeddings` false)."""
    total = 0
    for f in folder.glob("*.safetensors"):
        with open(f, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        total += sum(end - start for name, meta in header.items() if name != "__metadata__"
                     and "embed_tokens" not in name for start, end in [meta["data_offsets"]])
    return total


def cpu_description() -> dict[str, str]:
    from fleet.config.engine import BF16_CPU_FLAGS, cpu_flags

    flags = cpu_flags()
    model = next((line.partition(":")[2].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    simd = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")) or f in BF16_CPU_FLAGS)
    return {"model": model, "cores": str(os.cpu_count()), "simd_flags": " ".join(simd)}


def _one(model: str, config: str, streams: list[int]) -> dict:
    """In a fresh process: start the engine, warm it up, time each stream count."""
    from fleet.bootstrap import resolve_model_source
    from fleet.config.engine import EngineSpec

    fields = {"in_process_worker": False, **CONFIGS[config]}
    spec = EngineSpec(model_id=model, **fields)
    dtype, compiled = spec.dtype, spec.compile
    os.environ.update(spec.worker_env())
    # Offline, vLLM's CPU platform picks the worker process itself: in-process needs multiprocessing off
    # (one process), which is closest to what FleetVLLMEngine's "uni" executor does inside Serve.
    if spec.in_process_worker:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    from vllm import LLM, SamplingParams

    folder = Path(resolve_model_source(spec))
    llm = LLM(model=str(folder), dtype=spec.dtype, max_model_len=spec.max_model_len, max_num_seqs=max(streams),
              enforce_eager=not compiled, enable_prefix_caching=True, **spec.cpu_scheduler_kwargs())
    start_s = time.perf_counter() - T0
    task = "Write a Python function that returns the n-th Fibonacci number, with a docstring and tests."
    messages = [[{"role": "user", "content": f"Request {i}. {task}"}] for i in range(max(streams))]
    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    llm.chat(messages[:2], SamplingParams(max_tokens=8), use_tqdm=False)  # warm-up
    rates = {}
    for n in streams:
        t = time.perf_counter()
        outs = llm.chat(messages[:n], params, use_tqdm=False)
        wall = time.perf_counter() - t
        rates[n] = sum(len(o.outputs[0].token_ids) for o in outs) / wall
    return {"config": config, "dtype": dtype, "compiled": compiled, "start_s": start_s, "tok_s": rates,
            "weight_bytes": weight_bytes(folder)}


def _run(model: str, config: str, streams: list[int]) -> dict:
    cmd = [sys.executable, __file__, "--one", config, "--model", model, "--streams", ",".join(map(str, streams))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{config} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--streams", default="1,3,12,32")
    p.add_argument("--configs", default="fp32-eager,bf16-eager,bf16-eager-nobind,w8a8-eager,bf16-compiled,"
                                        "fp32-compiled")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    streams = [int(s) for s in a.streams.split(",")]
    if a.one:
        print("RESULT " + json.dumps(_one(a.model, a.one, streams)), flush=True)
        os._exit(0)  # skip vLLM's slow teardown

    cpu = cpu_description()
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores; {cpu['simd_flags']}")
    print(f"load before: {os.getloadavg()[0]:.2f}")
    bw = bandwidth_gbs()
    gbs = max(bw.values())
    print("memory read bandwidth: " + ", ".join(f"{k} {v:.1f} GB/s" for k, v in bw.items()) + f" -> {gbs:.1f}")
    rows = []
    for config in a.configs.split(","):
        for attempt in (1, 2) if config == "bf16-compiled" else (1,):  # the second start: a warm compile cache
            cache = Path.home() / ".cache" / "vllm" / "torch_compile_cache"
            warm = cache.is_dir() and any(cache.iterdir())
            row = _run(a.model, config, streams)
            row["start"] = ("compile cache " + ("warm" if warm else "cold")) if row["compiled"] else "eager"
            row["attempt"] = attempt
            rows.append(row)
            print(f"  {config} #{attempt}: start {row['start_s']:.1f}s ({row['start']}), "
                  + ", ".join(f"{n}: {r:.1f}" for n, r in row["tok_s"].items()) + " tok/s", flush=True)

    print(f"\n{a.model}; {MAX_TOKENS} forced tokens per stream; bandwidth {gbs:.1f} GB/s; "
          f"load after: {os.getloadavg()[0]:.2f}")
    head = "| config | start | weights | " + " | ".join(f"{n} stream{'s' * (n > 1)} (x ceiling)" for n in streams)
    print(head + " |")
    print("|" + "---|" * (3 + len(streams)))
    for row in rows:
        ceiling = gbs * 1e9 / row["weight_bytes"]  # steps/s: one stream's tok/s ceiling
        cells = [f"{row['tok_s'][str(n)]:.1f} ({row['tok_s'][str(n)] / (n * ceiling):.2f})" for n in streams]
        name = row["config"] + (f" #{row['attempt']}" if row["compiled"] else "")
        print(f"| {name} | {row['start_s']:.1f} s ({row['start']}) | {row['weight_bytes'] / 1e9:.2f} GB, "
              f"ceiling {ceiling:.1f} tok/s | " + " | ".join(cells) + " |")
    by = {(r["config"], r["attempt"]): r for r in rows}
    if ("fp32-eager", 1) in by and ("bf16-eager", 1) in by:
        f, b = by[("fp32-eager", 1)]["tok_s"], by[("bf16-eager", 1)]["tok_s"]
        print("bf16-eager / fp32-eager: " + ", ".join(f"{n}: {b[str(n)] / f[str(n)]:.2f}x" for n in streams))
    if a.json:
        Path(a.json).write_text(json.dumps({"cpu": cpu, "bandwidth": bw, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
