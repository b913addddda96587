"""Benchmark: round 1's critiques started per draft (dataflow) vs after every draft (a barrier), real engine.

The same deliberation (the demo's task, the same agents and seeds, natural lengths) runs with
`dataflow=True` and `False`, alternating, on one engine deployment. On a fixed-latency engine
both have the same floor (the slowest draft's author still needs its critique and revision after
it); what the overlap buys is engine utilisation: while the longest draft is still decoding, the
critiques of the drafts already in fill the batch. Printed: the wall from the first draft sent to
the last revision back, per run and the medians' ratio, and the completion tokens (so the work
compared is visibly the same). Judge and architect off, early stop off (both sides do the round).

    .venv/bin/python bench/overlap.py [--model smollm2] [--agents 3] [--repeat 2] [--max-tokens 320]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path

from fleet import DeliberationConfig, EngineSpec, Fleet, FleetConfig, Task
from fleet.schemas.record import DeliberationRecord

TASK_FILE = Path(__file__).resolve().parent.parent / "examples" / "rate_limiter.json"


def drafts_to_revisions_s(record: DeliberationRecord) -> float:
    """First draft sent to last revision back (the part the overlap changes)."""
    calls = [u for u in record.usage if u.stage in ("generate", "critique", "revise")]
    return (max(u.end_ms for u in calls) - min(u.start_ms for u in calls)) / 1000


async def run(args: argparse.Namespace) -> None:
    config = FleetConfig(engine=EngineSpec(model_id=args.model), max_tokens=args.max_tokens,
                         coordinator_name="bench-overlap")
    task = Task.model_validate_json(TASK_FILE.read_text())
    fleet = await Fleet.start(config)
    walls: dict[bool, list[float]] = {True: [], False: []}
    tokens: dict[bool, list[int]] = {True: [], False: []}
    try:
        await fleet.deliberate(task, role="DEV", num_agents=args.agents, rounds=0, judge=False)  # warm: actors up
        for i in range(args.repeat * 2):
            # ABBA order (dataflow, barrier, barrier, dataflow, ...): a machine that speeds up or slows down
            # from run to run favours neither side
            overlap = i % 4 in (0, 3)
            cfg = DeliberationConfig(rounds=1, judge=False, architect=False, early_stop=False, dataflow=overlap)
            record = await fleet.deliberate(task, role="DEV", num_agents=args.agents, config=cfg)
            walls[overlap].append(drafts_to_revisions_s(record))
            tokens[overlap].append(record.tokens.completion_tokens)
            print(f"run {i + 1}: dataflow={overlap!s:<5} drafts..revisions {walls[overlap][-1]:6.1f} s, "
                  f"{record.tokens.completion_tokens} completion tokens", flush=True)
    finally:
        await fleet.shutdown()
    on, off = statistics.median(walls[True]), statistics.median(walls[False])
    print(f"\nround 1 overlapping the drafts vs a barrier: {args.model}, {args.agents} DEV agents, median of "
          f"{args.repeat}")
    print(f"{'':<16}{'drafts..revisions s':>21}{'completion tok':>16}")
    print(f"{'overlap':<16}{on:>21.1f}{statistics.median(tokens[True]):>16.0f}")
    print(f"{'barrier':<16}{off:>21.1f}{statistics.median(tokens[False]):>16.0f}")
    print(f"overlap / barrier: {on / off:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2", help="embedded model id (smollm2: minutes; the coder model: ~4x)")
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--repeat", type=int, default=2, help="runs of each (alternating)")
    p.add_argument("--max-tokens", type=int, default=320, help="each agent's max_tokens per call")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
