"""Smaller weights on the CPU engine (issue 19, item 4): bf16 beside fleet's integer schemes, one run.

    PYTHONPATH=$PWD .venv/bin/python bench/int8_weights.py [--model qwen2.5-coder-0.5b]
        [--schemes w8a8,w4a16,w8a16] [--problems 40] [--streams 1,3] [--tokens 96]
    PYTHONPATH=$PWD .venv/bin/python bench/int8_weights.py --kernels   # GEMMs only, no engine

For bf16 and each scheme of `fleet.engine.quantize` (the folder is quantised from the bf16 folder
once, then cached beside it): a fresh offline vLLM engine in its own process (eager, chunked prefill
off, threads bound to 0-1, as fleet runs it), which reports whether it loads and which linear
kernel vLLM chose (its log lines), the greedy answer to a Fibonacci prompt, forced-length decode
speed at each stream count, and HumanEval problems 0..N-1, one greedy answer each, graded with the
hidden `check` in fleet's sandbox. A scheme that fails to load is a row with its error, not a crash;
each engine's whole log is kept as `<fleet cache>/models/int8-bench-<folder>.log`.
Engines run one after another, never two at once; the load average is printed beside each row
because the machine may be shared. Leaves out: memory use, start time of a compiled engine, more
than one sample per problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

FIB = "Write a Python function that returns the n-th Fibonacci number."
INSTRUCTION = "Complete this Python function. Return the whole function in one ```python block."
ENGINE_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0-1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
              "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
# vLLM log lines that name the quantisation method and kernel it chose, or why it could not.
KERNEL_LINE = re.compile(r"(Using|Selected) \S+ for |cannot implement due to")
ROOT_CAUSE = re.compile(r"\] (\w+(Error|Exception): .*)")  # the first raise in a worker's traceback


def _part(**fields) -> None:
    # One line per finished measurement: an engine killed on its timeout still reports what it did.
    print("PART " + json.dumps(fields), flush=True)


def _one(folder: str, problems: int, streams: list[int], tokens: int) -> None:
    """Child process: one engine, every measurement, each as a PART line when done."""
    os.environ.update(ENGINE_ENV)
    import torch
    from vllm import LLM, SamplingParams

    from fleet.eval.humaneval import load_problems

    t0 = time.perf_counter()
    llm = LLM(model=folder, dtype="bfloat16", enforce_eager=True, max_model_len=2048, enable_chunked_prefill=False,
              max_num_batched_tokens=2048)
    # CPUInt8ScaledMMLinearKernel takes sgl's int8 GEMM with AMX, oneDNN's without (it logs neither).
    _part(start_s=time.perf_counter() - t0, amx=torch.cpu._is_amx_tile_supported())
    greedy = SamplingParams(temperature=0.0, max_tokens=256)
    _part(fib=llm.chat([{"role": "user", "content": FIB}], greedy, use_tqdm=False)[0].outputs[0].text)
    forced = SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True)
    llm.generate(["Warm-up."], SamplingParams(max_tokens=4), use_tqdm=False)
    speeds = {}
    for n in streams:
        prompts = [f"Request {i}: explain, step by step, how a hash map handles collisions." for i in range(n)]
        start = time.perf_counter()
        res = llm.generate(prompts, forced, use_tqdm=False)
        speeds[str(n)] = sum(len(r.outputs[0].token_ids) for r in res) / (time.perf_counter() - start)
        _part(tok_s=dict(speeds), load1=os.getloadavg()[0])
    if problems:
        chats = [[{"role": "user", "content": f"{INSTRUCTION}\n\n{p.prompt}"}] for p in load_problems(0, problems)]
        start = time.perf_counter()
        res = llm.chat(chats, SamplingParams(temperature=0.0, max_tokens=512), use_tqdm=False)
        _part(eval_s=time.perf_counter() - start, answers=[r.outputs[0].text for r in res])


def _kernels(reps: int = 8) -> None:
    """No engine: the coder model's decode-step Linear layers (24 x qkv, o, gate_up, down; random weights)
    through the two GEMMs vLLM's CPU build dispatches here: bf16 `onednn_mm` (unquantised layers) and int8
    `onednn_scaled_mm` after dynamic per-token activation quantisation (CPUInt8ScaledMMLinearKernel without
    AMX). Alternated, median of `reps`. lm_head stays bf16 in both (the schemes ignore it), timed apart."""
    import torch
    from vllm import _custom_ops as ops

    torch.set_num_threads(2)
    shapes = [(896, 1152), (896, 896), (896, 9728), (4864, 896)] * 24  # (K, N)
    bf = [ops.create_onednn_mm((torch.randn(n, k) * 0.02).to(torch.bfloat16).t(), 32) for k, n in shapes]
    i8 = [ops.create_onednn_scaled_mm(torch.randint(-127, 127, (n, k), dtype=torch.int8).t(),
                                      torch.rand(n, 1) * 1e-3, torch.bfloat16, True, False, 32) for k, n in shapes]
    head = ops.create_onednn_mm((torch.randn(151936, 896) * 0.02).to(torch.bfloat16).t(), 32)

    def bf16(m: int) -> None:
        for h in bf:
            ops.onednn_mm(h, torch.randn(m, h.k, dtype=torch.bfloat16), None)

    def int8(m: int) -> None:
        for h in i8:
            xq, xs, _ = ops.onednn_scaled_int8_quant(torch.randn(m, h.k, dtype=torch.bfloat16), None, None, True)
            ops.onednn_scaled_mm(h, xq, torch.empty((m, h.n), dtype=torch.bfloat16), xs, None, None, None)

    def lm_head(m: int) -> None:
        ops.onednn_mm(head, torch.randn(m, 896, dtype=torch.bfloat16), None)

    for m in (1, 3):
        times: dict[str, list[float]] = {"bf16": [], "int8": [], "lm_head": []}
        for rep in range(reps):
            order = (bf16, int8, lm_head) if rep % 2 else (int8, bf16, lm_head)
            for f in order:
                f(m)  # first touch of the weights' pages and oneDNN's primitive for this m: not timed
                start = time.perf_counter()
                for _ in range(5):
                    f(m)
                times[f.__name__].append((time.perf_counter() - start) / 5 * 1000)
        ms = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        print(f"{m} row(s): 96 Linear layers bf16 {ms['bf16']:.1f} ms, int8 {ms['int8']:.1f} ms "
              f"({ms['bf16'] / ms['int8']:.2f}x); + lm_head {ms['lm_head']:.1f} ms -> decode step "
              f"{ms['bf16'] + ms['lm_head']:.1f} vs {ms['int8'] + ms['lm_head']:.1f} ms; load {os.getloadavg()[0]:.1f}")


async def _grade(answers: list[str]) -> int:
    from fleet.eval.humaneval import grade, load_problems

    gate = asyncio.Semaphore(2)

    async def one(problem, answer: str) -> bool:
        async with gate:
            run = await grade(problem, answer)
        return run.error is None and run.total > 0 and run.passed == run.total

    return sum(await asyncio.gather(*(one(p, a) for p, a in zip(load_problems(0, len(answers)), answers,
                                                                   strict=True))))


def _folder(model: str, scheme: str) -> Path:
    from fleet.engine.model_prep import prepare_model
    from fleet.engine.quantize import prepare_quantized

    bf16 = prepare_model(model, "bfloat16")
    if scheme == "bf16":
        return bf16
    t0 = time.perf_counter()
    dst = prepare_quantized(bf16, scheme)  # type: ignore[arg-type]
    print(f"{dst.name} ready in {time.perf_counter() - t0:.1f} s", flush=True)
    return dst


def _weight_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--schemes", default="w8a8,w4a16,w8a16", help="besides bf16, which always runs first")
    p.add_argument("--problems", type=int, default=40, help="HumanEval 0..N-1; 0 skips the eval")
    p.add_argument("--streams", default="1,3")
    p.add_argument("--tokens", type=int, default=96)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per engine (what it measured stays)")
    p.add_argument("--kernels", action="store_true", help="only the GEMM comparison (no engine, ~30 s)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.kernels:
        _kernels()
        return
    streams = [int(s) for s in a.streams.split(",")]
    if a.one:
        _one(a.one, a.problems, streams, a.tokens)
        os._exit(0)  # skip vLLM's slow interpreter teardown

    rows = []
    for scheme in ["bf16", *[s for s in a.schemes.split(",") if s]]:
        folder = _folder(a.model, scheme)
        load = os.getloadavg()[0]
        cmd = [sys.executable, __file__, "--one", str(folder), "--problems", str(a.problems), "--streams", a.streams,
               "--tokens", str(a.tokens)]
        # Own session: on a timeout the whole group is killed; vLLM's engine processes exit when their parent dies.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=a.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            log, _ = proc.communicate()
            log += f"\ntimed out after {a.timeout:.0f} s"
        (folder.parent / f"int8-bench-{folder.name}.log").write_text(log)
        lines = log.splitlines()
        row = {"scheme": scheme, "folder": str(folder), "weight_mb": _weight_mb(folder), "load1": load,
               "kernel_lines": sorted({m.split("] ", 1)[-1].strip() for m in lines
                                       if KERNEL_LINE.search(m) and not m.startswith("PART ")})}
        for part in (x for x in lines if x.startswith("PART ")):
            row |= json.loads(part[5:])
        if "start_s" not in row:
            causes = [m.group(1) for m in map(ROOT_CAUSE.search, lines) if m]
            row["error"] = causes[0] if causes else "\n".join(lines[-15:])
        row["passed"] = asyncio.run(_grade(row.pop("answers"))) if "answers" in row else None
        rows.append(row)
        print(json.dumps(row, indent=1), flush=True)

    print(f"\n{a.model}, vLLM CPU offline, eager, {a.tokens} forced tokens; HumanEval 0-{a.problems - 1} greedy")
    cols = " | ".join(f"{n} stream{'s' * (n > 1)}" for n in streams)
    print(f"| weights | weight MB | start | {cols} | HumanEval | load avg |\n|---|---:|---:|" + "---:|" * len(streams)
          + "---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['scheme']} | {r['weight_mb']:.0f} | fails: see below |" + " |" * (len(streams) + 2))
            continue
        speeds = " | ".join(f"{r['tok_s'][str(n)]:.1f}" if str(n) in r.get("tok_s", {}) else "-"
                            for n in streams)
        score = "-" if r["passed"] is None else f"{r['passed']}/{a.problems}"
        print(f"| {r['scheme']} | {r['weight_mb']:.0f} | {r['start_s']:.0f} s | {speeds} | {score} "
              f"| {r['load1']:.1f} |")
    for r in rows:
        if "error" in r:
            print(f"\n{r['scheme']} failed: {r['error']}\n  " + "\n  ".join(r["kernel_lines"]))


if __name__ == "__main__":
    main()
