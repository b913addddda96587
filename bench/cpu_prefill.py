"""What turning chunked prefill off costs on the CPU (issue 10), measured side by side in one run.

    .venv/bin/python bench/cpu_prefill.py [--model smollm2] [--prompts 12] [--max-tokens 64]

The same unseeded workload (seeds would crash a chunked setting: that is the point of the fix)
through vLLM's offline engine: vLLM's default CPU scheduler, the crash recipe's (chunked
prefill, 256-token steps), and fleet's (`EngineSpec.cpu_scheduler_kwargs()`: off, step budget =
max_model_len). Prints wall time, output
tokens/s and the ratio. Prompts are ~760 tokens, longer than a default chunk, so prefill matters.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _one(model: str, sched: str, prompts: int, max_tokens: int) -> dict:
    os.environ.update({"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": "2", "VLLM_CPU_KVCACHE_SPACE": "1",
                       "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"})
    from vllm import LLM, SamplingParams

    from fleet.config.engine import EngineSpec
    from fleet.engine.model_prep import prepare_model

    spec = EngineSpec(model_id=model, max_model_len=2048)
    kwargs = {"fleet": spec.cpu_scheduler_kwargs(),
              "chunked-256": {"enable_chunked_prefill": True, "max_num_batched_tokens": 256}}.get(sched, {})
    llm = LLM(model=str(prepare_model(model, spec.weights_dtype)), dtype=spec.dtype, max_model_len=spec.max_model_len,
              enforce_eager=True, distributed_executor_backend="uni", **kwargs)
    text = "Review this login handler for rate limiting, input validation, logging and error handling. " * 28
    batch = [f"Request {i}. {text}" for i in range(prompts)]
    params = SamplingParams(temperature=0.7, max_tokens=max_tokens, ignore_eos=True)
    llm.generate(batch[:2], SamplingParams(max_tokens=4), use_tqdm=False)  # warm-up
    start = time.perf_counter()
    outs = llm.generate(batch, params, use_tqdm=False)
    wall = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    return {"sched": sched, "wall_s": wall, "out_tokens": tokens, "tok_s": tokens / wall, "kwargs": kwargs}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2")
    p.add_argument("--prompts", type=int, default=12)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print("RESULT " + json.dumps(_one(a.model, a.one, a.prompts, a.max_tokens)), flush=True)
        os._exit(0)
    rows = []
    for sched in ("vllm-default", "chunked-256", "fleet"):  # each in a fresh process: one engine per process
        out = subprocess.run([sys.executable, __file__, "--one", sched, "--model", a.model, "--prompts",
                              str(a.prompts), "--max-tokens", str(a.max_tokens)], capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{sched} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(line[7:]))
    base = rows[0]["tok_s"]
    print(f"{a.prompts} prompts x ~760 tokens, {a.max_tokens} output tokens each, {a.model}, vLLM CPU offline")
    print("| scheduler | wall | output tok/s | vs default |\n|---|---|---|---|")
    for r in rows:
        kwargs = r["kwargs"] or ""
        print(f"| {r['sched']} {kwargs} | {r['wall_s']:.1f} s | {r['tok_s']:.1f} | {r['tok_s'] / base:.2f}x |")


if __name__ == "__main__":
    main()
