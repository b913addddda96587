"""Benchmark: what fleet's scheduling costs on top of the engine, measured on a fixed-latency engine.

Every engine call sleeps `--latency` seconds (the fake engine inside real agent actors on a local
Ray), so a deliberation's floor is known exactly: one latency per dependent wave of calls (drafts,
each round's critiques and revisions, the judge, the architect). Three tables, measured side by side
in one run on a warm fleet (agent actors started by a warm-up deliberation first):

1. overhead: wall of one deliberation / its floor, and the seconds spent outside engine calls;
2. fan-out: the drafts' stage wall for N = 1, 2, 4, 8 agents relative to N = 1;
3. concurrency: 32 deliberations at once vs one, throughput ratio (deliberations per second);
4. pipelining: a review round where one agent's calls take `--slow`x as long (ring of 3), its wall vs
   the floor with a barrier between critiques and revisions and the floor without (fleet's).

    .venv/bin/python bench/scheduling.py [--latency 0.5] [--repeat 5] [--concurrent 32] [--slow 4]

Engine-side speed (batching on the real CPU engine) is `bench/stage_concurrency.py`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from fleet import DeliberationConfig, EngineSpec, FakeEngineConfig, Fleet, FleetConfig, Task
from fleet.record import DeliberationRecord

TASK = Task(description="Add rate limiting to the login endpoint")


def waves(record: DeliberationRecord) -> int:
    """Dependent waves of engine calls: the calls of one (stage, round) run at once."""
    return len({(u.stage, u.round) for u in record.usage})


async def timed(fleet: Fleet, **kwargs) -> tuple[float, DeliberationRecord]:
    start = time.perf_counter()
    record = await fleet.deliberate(TASK, role="DEV", **kwargs)
    return time.perf_counter() - start, record


async def run(args: argparse.Namespace) -> None:
    latency = args.latency
    config = FleetConfig(
        engine=EngineSpec(kind="inproc_fake", fake=FakeEngineConfig(latency_s=latency)),
        council_size=8, max_concurrent=args.concurrent, coordinator_name="bench-scheduling",
        deliberation=DeliberationConfig(rounds=1),
    )
    fleet = await Fleet.start(config)
    try:
        await timed(fleet, num_agents=8)  # warm: every agent actor of the council exists from here on

        print(f"\nfixed-latency engine: {latency:.2f} s per call; warm fleet; median of {args.repeat}")
        print("\n1. overhead: one deliberation (3 agents, 1 round, judge, architect) vs its floor")
        rows = [await timed(fleet, num_agents=3) for _ in range(args.repeat)]
        n_waves = waves(rows[0][1])
        floor, wall = n_waves * latency, statistics.median(w for w, _ in rows)
        print(f"{'waves':>6}{'floor s':>10}{'wall s':>10}{'wall/floor':>12}{'outside engine s':>18}")
        print(f"{n_waves:>6}{floor:>10.2f}{wall:>10.2f}{wall / floor:>12.3f}{wall - floor:>18.2f}")

        print("\n2. fan-out: the drafts' stage wall for N agents, relative to N = 1")
        print(f"{'agents':>6}{'generate s':>12}{'ratio':>8}")
        base = None
        for n in (1, 2, 4, 8):
            records = [(await timed(fleet, num_agents=n, rounds=0))[1] for _ in range(args.repeat)]
            stage = statistics.median(next(t.wall_ms for t in r.timings if t.phase == "generate") / 1000
                                      for r in records)
            base = base or stage
            print(f"{n:>6}{stage:>12.3f}{stage / base:>8.2f}")

        print(f"\n3. concurrency: {args.concurrent} deliberations at once vs one (3 agents, 1 round)")
        one = statistics.median([(await timed(fleet, num_agents=3))[0] for _ in range(args.repeat)])
        start = time.perf_counter()
        records = await asyncio.gather(*(fleet.deliberate(TASK, role="DEV", num_agents=3)
                                         for _ in range(args.concurrent)))
        many = time.perf_counter() - start
        assert all(r.status == "completed" for r in records), [r.status for r in records]
        ratio = (args.concurrent / many) / (1 / one)
        print(f"{'one s':>8}{f'{args.concurrent} at once s':>18}{'throughput ratio':>18}")
        print(f"{one:>8.2f}{many:>18.2f}{ratio:>17.1f}x")
    finally:
        await fleet.shutdown()
    await pipelining(args)


async def pipelining(args: argparse.Namespace) -> None:
    latency, slow = args.latency, args.slow
    fake = FakeEngineConfig(latency_s=latency, agent_latency_s={"agent-dev-001": latency * (slow - 1)})
    config = FleetConfig(engine=EngineSpec(kind="inproc_fake", fake=fake), coordinator_name="bench-pipelining",
                         deliberation=DeliberationConfig(rounds=1, topology="ring", judge=False))
    fleet = await Fleet.start(config)
    try:
        await timed(fleet, num_agents=3)  # warm
        records = [(await timed(fleet, num_agents=3))[1] for _ in range(args.repeat)]
        # ring of 3: 001 reviews 002, 002 reviews 003, 003 reviews 001; 001's calls take slow x latency
        lat = {"agent-dev-001": latency * slow, "agent-dev-002": latency, "agent-dev-003": latency}
        critic_of = {"agent-dev-002": "agent-dev-001", "agent-dev-003": "agent-dev-002",
                     "agent-dev-001": "agent-dev-003"}
        barrier = max(lat.values()) * 2  # every critique, then every revision
        pipelined = max(lat[critic_of[a]] + lat[a] for a in lat)  # each author: its critique, then its revision
        walls = []
        for r in records:
            calls = [u for u in r.usage if u.round == 1 and u.stage in ("critique", "revise")]
            walls.append((max(u.end_ms for u in calls) - min(u.start_ms for u in calls)) / 1000)
        wall = statistics.median(walls)
        print(f"\n4. pipelining: review round of a ring of 3, agent-dev-001 {slow:g}x slower; median of {args.repeat}")
        print(f"{'barrier floor s':>16}{'pipelined floor s':>19}{'measured s':>12}{'vs barrier':>12}")
        print(f"{barrier:>16.2f}{pipelined:>19.2f}{wall:>12.2f}{wall / barrier:>11.2f}x")
    finally:
        await fleet.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--latency", type=float, default=0.5, help="seconds per engine call (default 0.5)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--concurrent", type=int, default=32)
    p.add_argument("--slow", type=float, default=4.0, help="table 4: the slow agent's latency multiple")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
