"""Benchmark: vLLM's prefix-cache hit rate over one deliberation, prompt layout persona_first vs
shared_prefix (fleet/agents/prompts.py), on the real engine.

Each deliberation starts from an empty prefix cache (`LLMServer.reset_prefix_cache`), so the rate
is what one deliberation reuses of its own prompts; each call's cached tokens are vLLM's own count
(usage.prompt_tokens_details.cached_tokens), summed in the record. The layouts run alternately,
`--repeat` times each, same council, seeds and task (the README demo's). Besides the hit rate the
table shows prompt tokens actually computed (prompt - cached) and the wall, since a layout that
only adds cached text would raise the rate without saving anything.

    .venv/bin/python bench/prefix_cache.py [--model smollm2] [--max-tokens 160] [--block-size 32] [--repeat 2]

vLLM's CPU backend caches in blocks of 128 tokens unless `--block-size` says otherwise (a multiple of
32 there): shared text is reused only in whole blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from ray import serve

from fleet import DeliberationConfig, EngineSpec, Fleet, FleetConfig, Task
from fleet.config.engine import CODER_MODEL_ID
from fleet.schemas.record import DeliberationRecord

TASK_FILE = Path(__file__).resolve().parent.parent / "examples" / "rate_limiter.json"
LAYOUTS = ("persona_first", "shared_prefix")


async def one(fleet: Fleet, task: Task, layout: str) -> tuple[float, DeliberationRecord]:
    engine = fleet.config.engine
    handle = await asyncio.to_thread(serve.get_deployment_handle, engine.deployment_name, engine.app_name)
    await handle.reset_prefix_cache.remote()
    config = fleet.config.deliberation.model_copy(update={"prompt_layout": layout})
    start = time.perf_counter()
    record = await fleet.run(fleet.request(task, role="DEV", num_agents=3, config=config))
    return time.perf_counter() - start, record


async def run(args: argparse.Namespace) -> None:
    kwargs = {"block_size": args.block_size} if args.block_size else {}
    config = FleetConfig(engine=EngineSpec(model_id=args.model, engine_kwargs=kwargs), max_tokens=args.max_tokens,
                         coordinator_name="bench-prefix-cache", deliberation=DeliberationConfig(rounds=1))
    task = Task.model_validate_json(TASK_FILE.read_text())
    fleet = await Fleet.start(config)
    try:
        results: dict[str, list[tuple[float, DeliberationRecord]]] = {layout: [] for layout in LAYOUTS}
        for _ in range(args.repeat):
            for layout in LAYOUTS:
                results[layout].append(await one(fleet, task, layout))
        block = args.block_size or "engine default (128 on the CPU)"
        print(f"\nprefix cache over one deliberation: {args.model}, block size {block}, 3 DEV agents, 1 round, "
              f"judge, architect; max_tokens {args.max_tokens}; median of {args.repeat}")
        print(f"{'layout':>14}{'calls':>7}{'prompt tok':>12}{'cached':>9}{'hit rate':>10}{'computed':>10}{'wall s':>9}")
        computed: dict[str, float] = {}
        walls: dict[str, float] = {}
        for layout, rows in results.items():
            toks = [r.tokens for _, r in rows]
            assert all(t.cached_prompt_tokens is not None for t in toks), "the engine did not report cached tokens"
            prompt = statistics.median([t.prompt_tokens for t in toks])
            cached = statistics.median([t.cached_prompt_tokens or 0 for t in toks])
            rate = statistics.median([t.prefix_hit_rate or 0.0 for t in toks])
            computed[layout] = statistics.median([t.prompt_tokens - (t.cached_prompt_tokens or 0) for t in toks])
            walls[layout] = statistics.median([w for w, _ in rows])
            print(f"{layout:>14}{toks[0].calls:>7}{prompt:>12.0f}{cached:>9.0f}{rate:>10.1%}"
                  f"{computed[layout]:>10.0f}{walls[layout]:>9.1f}")
        print(f"\nshared_prefix / persona_first: computed prompt tokens "
              f"{computed['shared_prefix'] / computed['persona_first']:.2f}, wall "
              f"{walls['shared_prefix'] / walls['persona_first']:.2f}")
    finally:
        await fleet.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=CODER_MODEL_ID, help="embedded model id (smollm2 is ~5x faster here)")
    p.add_argument("--max-tokens", type=int, default=320, help="each agent call's completion budget")
    p.add_argument("--block-size", type=int, help="vLLM KV block size (default: the engine's)")
    p.add_argument("--repeat", type=int, default=1, help="deliberations per layout")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
