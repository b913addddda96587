"""Benchmark: a deliberation's stages fanned out at once vs. the same calls one after another.

Same council, same seeds, same real engine (SmolLM2 on vLLM's CPU build via ray.serve.llm), measured
side by side in one run; prints per-phase wall times and the ratio. The seed system ran every call
sequentially; this is the number that says what fanning out buys on this machine.

    .venv/bin/python bench/stage_concurrency.py [--agents 3] [--rounds 1] [--max-tokens 128] [--repeat 1] [--forced]

--forced makes every call generate exactly its budget (`ignore_eos`), so both runs do equal work and
every phase's ratio compares like with like (natural lengths differ between the runs: critiques feed
revisions).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from fleet import DeliberationConfig, Fleet, FleetConfig, Task
from fleet.agents.agent import AgentActor
from fleet.agents.api import PROBE_MAX_TOKENS, SELECT_MAX_TOKENS, AgentAPI
from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationRequest, SamplingOverride
from fleet.coordinator.deliberation import Deliberation
from fleet.coordinator.pool import ActorPool, AgentPool
from fleet.engine.client import engine_client
from fleet.messages import (
    AgentReply,
    CritiqueRequest,
    Decision,
    GenerateRequest,
    ProbeRequest,
    ReviseRequest,
    SelectRequest,
)
from fleet.scoring.scorer import RubricScorer


class SequentialAgent:
    """An agent whose calls wait for every other call of its pool to end (`AgentAPI`)."""

    def __init__(self, inner: AgentAPI, lock: asyncio.Lock) -> None:
        self.inner, self.lock = inner, lock

    async def ready(self) -> str:
        async with self.lock:
            return await self.inner.ready()

    async def generate(self, req: GenerateRequest) -> AgentReply:
        async with self.lock:
            return await self.inner.generate(req)

    async def critique(self, req: CritiqueRequest, max_tokens: int | None = None) -> AgentReply:
        async with self.lock:
            return await self.inner.critique(req, max_tokens)

    async def revise(self, req: ReviseRequest) -> AgentReply:
        async with self.lock:
            return await self.inner.revise(req)

    async def write_probes(self, req: ProbeRequest, max_tokens: int = PROBE_MAX_TOKENS) -> AgentReply:
        async with self.lock:
            return await self.inner.write_probes(req, max_tokens)

    async def select(self, req: SelectRequest, max_tokens: int = SELECT_MAX_TOKENS) -> tuple[Decision, AgentReply]:
        async with self.lock:
            return await self.inner.select(req, max_tokens)


class SequentialPool(AgentPool):
    """The seed system's behaviour: one agent call at a time."""

    def __init__(self, inner: AgentPool) -> None:
        self.inner, self.lock = inner, asyncio.Lock()

    def agent(self, agent_id: str) -> AgentAPI:
        return SequentialAgent(self.inner.agent(agent_id), self.lock)


async def run(args: argparse.Namespace) -> None:
    fleet = await Fleet.start(FleetConfig(max_tokens=args.max_tokens, coordinator_name="bench-coordinator"))
    council = CouncilSpec.default("DEV", args.agents, max_tokens=args.max_tokens)
    # The same agent actors (placed beside the engine) serve both runs; only the pool differs.
    engine = fleet.config.engine
    handles = {a.agent_id: AgentActor.options(resources={engine.placement_resource: 0.001}).remote(
        a, engine_client(engine), engine.model_id) for a in council.agents}
    request = DeliberationRequest(task=Task(description="Add rate limiting to the login endpoint"), role="DEV",
                                  council=council, config=DeliberationConfig(rounds=args.rounds, judge=False),
                                  sampling=SamplingOverride(ignore_eos=True) if args.forced else None)
    results: dict[str, list[dict[str, float]]] = {"sequential": [], "concurrent": []}
    for _ in range(args.repeat):
        for name, pool in (("sequential", SequentialPool(ActorPool(handles))), ("concurrent", ActorPool(handles))):
            record = await Deliberation(request, council, pool, RubricScorer()).run()
            phases = {f"{t.phase}{t.round or ''}": t.wall_ms / 1000 for t in record.timings
                      if t.phase in ("generate", "critique", "revise")}
            # In a review round critiques and revisions overlap (an author revises once its critiques are in):
            # the total is the calls' span, not a sum of phases.
            calls = [u for u in record.usage if u.stage in ("generate", "critique", "revise")]
            phases["total"] = (max(u.end_ms for u in calls) - min(u.start_ms for u in calls)) / 1000
            phases["completion_tokens"] = record.tokens.completion_tokens
            results[name].append(phases)
    await fleet.shutdown(engine=True)

    lengths = "forced to max_tokens" if args.forced else "natural lengths"
    print(f"\n{args.agents} agents, {args.rounds} round(s), max_tokens {args.max_tokens} ({lengths}), "
          f"median of {args.repeat}")
    print(f"{'phase':<12}{'sequential s':>14}{'concurrent s':>14}{'ratio':>8}")
    for key in results["concurrent"][0]:
        if key == "completion_tokens":
            continue
        seq = statistics.median(r[key] for r in results["sequential"])
        con = statistics.median(r[key] for r in results["concurrent"])
        print(f"{key:<12}{seq:>14.1f}{con:>14.1f}{seq / con:>7.2f}x")
    # Sampled texts differ between the two runs (critiques feed revisions), so tokens/s is the fairer ratio.
    rates = {name: statistics.median(r["completion_tokens"] / r["total"] for r in rs) for name, rs in results.items()}
    for name, rate in rates.items():
        print(f"{name}: {rate:.1f} completion tokens/s")
    print(f"throughput ratio (concurrent / sequential): {rates['concurrent'] / rates['sequential']:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--forced", action="store_true", help="every call generates exactly its max_tokens")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
