"""The recipe that crashed vLLM's CPU engine (issue 10), as a script the engine tier runs in a subprocess.

    python tests/seeded_prefill_recipe.py old     # chunked prefill, 256-token steps: the engine dies
    python tests/seeded_prefill_recipe.py fleet   # fleet's CPU scheduler settings: every request finishes

Six prompts of ~700 tokens, each with its own seed, sampled at temperature 0.7 at once, on the embedded
SmolLM2 (offline `LLM`, in-process engine for a fast start). Prints one JSON line: {"finished": n} or
{"crashed": "<error>"}.
"""

from __future__ import annotations

import json
import os
import sys


def prompts(n: int = 6) -> list[str]:
    """~760 tokens each: together far over a 256-token prefill step."""
    base = ("Review this login handler for rate limiting, input validation, logging and error handling, "
            "and list every weakness you find with a concrete fix. ")
    return [f"Request {i}. " + base * 28 for i in range(n)]


def main(mode: str) -> None:
    os.environ.update({"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": "2", "VLLM_CPU_KVCACHE_SPACE": "1",
                       "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"})
    from vllm import LLM, SamplingParams

    from fleet.config.engine import SMOL_MODEL_ID, EngineSpec
    from fleet.engine.model_prep import prepare_model

    spec = EngineSpec(model_id=SMOL_MODEL_ID, max_model_len=2048)
    sched = ({"enable_chunked_prefill": True, "max_num_batched_tokens": 256} if mode == "old"
             else spec.cpu_scheduler_kwargs())
    llm = LLM(model=str(prepare_model(SMOL_MODEL_ID, spec.weights_dtype)), dtype=spec.dtype,
              max_model_len=spec.max_model_len, enforce_eager=True, distributed_executor_backend="uni", **sched)
    params = [SamplingParams(temperature=0.7, seed=1000 + i, max_tokens=8) for i in range(6)]
    try:
        outs = llm.generate(prompts(), params, use_tqdm=False)
    except Exception as e:  # the point is to report the engine's death
        print(json.dumps({"crashed": f"{type(e).__name__}: {e}", "sched": sched}), flush=True)
        os._exit(0)
    tokens = [len(o.prompt_token_ids) for o in outs]
    print(json.dumps({"finished": sum(bool(o.outputs[0].text is not None) for o in outs), "prompt_tokens": tokens,
                      "sched": sched}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
