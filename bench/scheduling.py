"""Benchmark: what fleet's scheduling costs on top of the engine, measured on a fixed-latency engine.

Every engine call sleeps `--latency` seconds (the fake engine inside real agent actors on a local
Ray), so a deliberation's floor is known exactly: one latency per dependent wave of calls (drafts,
each round's critiques and revisions, the judge, the architect). Four tables, measured side by side
in one run on a warm fleet (agent actors started by a warm-up deliberation first):

1. overhead: wall of one deliberation / its floor, and the seconds spent outside engine calls;
2. fan-out: the drafts' stage wall for N = 1, 2, 4, 8 agents relative to N = 1;
3. concurrency: 32 deliberations at once vs one, throughput ratio (deliberations per second);
4. dataflow: the drafts and 2 review rounds of a ring of 4 whose calls differ in length (`--jitter`),
   with `dataflow` on and off (a barrier after the drafts and each round), each beside its floor.

    .venv/bin/python bench/scheduling.py [--latency 0.5] [--repeat 5] [--concurrent 32] [--jitter 1.0]

Engine-side speed (batching on the real CPU engine) is `bench/stage_concurrency.py`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from fleet import DeliberationConfig, EngineSpec, FakeEngineConfig, Fleet, FleetConfig, Task
from fleet.config.deliberation import SamplingOverride
from fleet.schemas.record import DeliberationRecord

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
        print("   (dataflow, fleet's default, and a barrier after each stage, runs alternating)")
        barrier = DeliberationConfig(rounds=1, dataflow=False)
        rows: dict[bool, list[tuple[float, DeliberationRecord]]] = {True: [], False: []}
        for _ in range(args.repeat):
            rows[True].append(await timed(fleet, num_agents=3))
            rows[False].append(await timed(fleet, num_agents=3, config=barrier))
        print(f"{'':>9}{'waves':>6}{'floor s':>10}{'wall s':>10}{'wall/floor':>12}{'outside engine s':>18}")
        for dataflow, name in ((True, "dataflow"), (False, "barrier")):
            n_waves = waves(rows[dataflow][0][1])
            floor, wall = n_waves * latency, statistics.median(w for w, _ in rows[dataflow])
            print(f"{name:>9}{n_waves:>6}{floor:>10.2f}{wall:>10.2f}{wall / floor:>12.3f}{wall - floor:>18.2f}")

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


def floors(record: DeliberationRecord) -> tuple[float, float]:
    """Table 4's floors from this record's own call latencies: the drafts and review rounds with each
    call starting the moment its inputs exist (dataflow), and with each round after the one before
    (a barrier; inside a round an author still revises once its critiques are in)."""
    ms = {(p.round, p.author_id): p.usage.latency_ms / 1000 for p in record.proposals}
    crit = {(c.round, c.critic_id, c.author_id): c.usage.latency_ms / 1000 for c in record.critiques}
    agents = [a.agent_id for a in record.council.agents]
    result = []
    for dataflow in (True, False):
        done = {a: ms[(0, a)] for a in agents}
        for k in range(1, record.config.rounds + 1):
            start = done if dataflow else dict.fromkeys(agents, max(done.values()))
            done = {a: max([start[a]] + [max(start[a], start[c]) + t for (r, c, au), t in crit.items()
                                         if r == k and au == a]) + ms[(k, a)] for a in agents}
        result.append(max(done.values()))
    return result[0], result[1]


async def pipelining(args: argparse.Namespace) -> None:
    rounds, n = 2, 4
    fake = FakeEngineConfig(latency_s=args.latency, latency_jitter_s=args.jitter)
    walls: dict[bool, list[float]] = {True: [], False: []}
    floor: dict[bool, list[float]] = {True: [], False: []}
    texts: dict[bool, list[list[str]]] = {True: [], False: []}
    for dataflow in (True, False):
        config = FleetConfig(engine=EngineSpec(kind="inproc_fake", fake=fake), coordinator_name="bench-pipelining",
                             deliberation=DeliberationConfig(rounds=rounds, topology="ring", judge=False,
                                                             architect=False, dataflow=dataflow))
        fleet = await Fleet.start(config)
        try:
            await timed(fleet, num_agents=n)  # warm
            for i in range(args.repeat):  # each run another seed: other calls, other lengths
                r = (await timed(fleet, num_agents=n, sampling=SamplingOverride(seed=i)))[1]
                calls = [u for u in r.usage if u.stage in ("generate", "critique", "revise")]
                walls[dataflow].append((max(u.end_ms for u in calls) - min(u.start_ms for u in calls)) / 1000)
                floor[dataflow].append(floors(r)[0 if dataflow else 1])
                texts[dataflow].append([p.content for p in r.proposals])
        finally:
            await fleet.shutdown()
    assert texts[True] == texts[False], "dataflow and barrier runs of the same seeds differ"
    print(f"\n4. dataflow: drafts + {rounds} review rounds of a ring of {n}, each call {args.latency:g} s + up to "
          f"{args.jitter:g} s by its hash (calls differ in length), first draft sent to last revision back; "
          f"{args.repeat} seeds, each run both ways (same calls, same outputs); medians")
    print(f"{'':>10}{'floor s':>10}{'measured s':>12}")
    for dataflow, name in ((False, "barrier"), (True, "dataflow")):
        print(f"{name:>10}{statistics.median(floor[dataflow]):>10.2f}{statistics.median(walls[dataflow]):>12.2f}")
    ratios = [d / b for d, b in zip(walls[True], walls[False], strict=True)]
    print(f"dataflow / barrier, measured, per seed: {', '.join(f'{x:.2f}' for x in ratios)}; "
          f"median {statistics.median(ratios):.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--latency", type=float, default=0.5, help="seconds per engine call (default 0.5)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--concurrent", type=int, default=32)
    p.add_argument("--jitter", type=float, default=1.0, help="table 4: up to this much more per call (seconds)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
