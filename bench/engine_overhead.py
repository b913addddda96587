"""Benchmark: a fleet deliberation vs the same engine calls issued directly, on the real engine.

One deliberation runs through the whole fleet (coordinator actor, agent actors, checks in the
sandbox, the store), every free-text call forced to its max_tokens (`ignore_eos`) so both sides do
the same work. Then the same calls -- the same prompts rebuilt from the record, seeds, budgets --
go straight to the engine deployment from this process, one wave per stage (every call of a stage
at once, as fast as the engine allows). Printed side by side, per stage and in all: the wall of each,
and fleet / direct (target issue 9: <= 1.10). The judge is off (its JSON answers end when they end);
the architect's choice is compared (greedy, same prompt).

    .venv/bin/python bench/engine_overhead.py [--model smollm2] [--max-tokens 96] [--agents 3]

What the ratio holds: fleet's hops (driver -> coordinator -> agent actors -> engine), the visible-test
checks between stages, the store writes, and the stage barriers (in a review round fleet pipelines,
which can make it faster than the direct waves when calls differ in length).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from fleet import DeliberationConfig, EngineSpec, Fleet, FleetConfig, Task
from fleet.agents.agent import Agent
from fleet.config.council import CouncilSpec
from fleet.config.deliberation import SamplingOverride
from fleet.coordinator.topology import review_pairs
from fleet.engine.client import engine_client
from fleet.messages import Candidate, CritiqueRequest, GenerateRequest, ReceivedCritique, ReviseRequest, SelectRequest
from fleet.schemas.record import DeliberationRecord
from fleet.scoring.judge import card_summary

TASK_FILE = Path(__file__).resolve().parent.parent / "examples" / "rate_limiter.json"


async def wave(calls: list) -> float:
    start = time.perf_counter()
    await asyncio.gather(*calls)
    return time.perf_counter() - start


async def direct(record: DeliberationRecord, architect: Agent | None, agents: dict[str, Agent]) -> dict[str, float]:
    """The record's engine calls again, straight to the engine: one wave per stage."""
    cfg, task, sampling, layout = record.config, record.task, record.sampling, record.config.prompt_layout
    ids = list(agents)
    drafts = {p.author_id: p for p in record.proposals if p.round == 0}
    walls = {"generate": await wave([agents[a].generate(GenerateRequest(task=task, sampling=sampling, layout=layout))
                                     for a in ids])}
    received: dict[str, list[ReceivedCritique]] = {a: [] for a in ids}
    for c in record.critiques:
        received[c.author_id].append(ReceivedCritique(critic_id=c.critic_id, content=c.content))
    shown = {a: drafts[a].feedback if cfg.feedback else None for a in ids}
    walls["critique"] = await wave([
        agents[critic].critique(CritiqueRequest(task=task, round=1, author_id=author, proposal=drafts[author].content,
                                                feedback=shown[author], sampling=sampling, layout=layout),
                                max_tokens=cfg.critique_max_tokens)
        for critic, author in review_pairs(ids, cfg.topology)])
    walls["revise"] = await wave([
        agents[a].revise(ReviseRequest(task=task, round=1, proposal=drafts[a].content, critiques=received[a],
                                       feedback=shown[a], sampling=sampling, layout=layout)) for a in ids])
    finals = {p.author_id: p.content for p in record.proposals}  # the last proposal of each author
    top = record.scores[: task.k]
    if architect is not None and len(top) >= 2:
        request = SelectRequest(task=task, layout=layout, candidates=[
            Candidate(author_id=c.author_id, content=finals[c.author_id], summary=card_summary(c)) for c in top])
        walls["select"] = await wave([architect.select(request)])
    return walls


def fleet_walls(record: DeliberationRecord) -> dict[str, float]:
    """Per stage from the record's call spans (first call sent to last answer back), checks included."""
    def span(*stages: str) -> float:
        calls = [u for u in record.usage if u.stage in stages and u.start_ms is not None]
        return (max(u.end_ms for u in calls) - min(u.start_ms for u in calls)) / 1000 if calls else 0.0

    walls = {"generate": span("generate"), "review round": span("critique", "revise"), "select": span("select")}
    walls["total (generate..select)"] = span("generate", "critique", "revise", "select")
    return walls


async def run(args: argparse.Namespace) -> None:
    config = FleetConfig(engine=EngineSpec(model_id=args.model), max_tokens=args.max_tokens,
                         coordinator_name="bench-engine-overhead",
                         deliberation=DeliberationConfig(rounds=1, judge=False, early_stop=False))
    task = Task.model_validate_json(TASK_FILE.read_text())
    sampling = SamplingOverride(ignore_eos=True)
    fleet = await Fleet.start(config)
    try:
        council = CouncilSpec.default("DEV", args.agents, max_tokens=args.max_tokens)
        await fleet.deliberate(task, role="DEV", council=council, sampling=sampling, rounds=0)  # warm: actors up
        record = await fleet.deliberate(task, role="DEV", council=council, sampling=sampling)
        engine = fleet.config.engine
        agents = {a.agent_id: Agent(a, engine_client(engine), engine.model_id) for a in council.agents}
        architect = None
        if record.selection is not None and record.selection.method == "architect":
            chosen_by = next(a for a in (await fleet.council("ARCHITECT")).agents
                             if a.agent_id == record.selection.architect_id)
            architect = Agent(chosen_by, engine_client(engine), engine.model_id)
        for a in [*agents.values(), *([architect] if architect else [])]:
            await a.ready()
        d = await direct(record, architect, agents)
    finally:
        await fleet.shutdown()
    f = fleet_walls(record)
    rows = [("generate", f["generate"], d["generate"]),
            ("review round", f["review round"], d["critique"] + d["revise"]),
            ("select", f["select"], d.get("select", 0.0)),
            ("total (generate..select)", f["total (generate..select)"], sum(d.values()))]
    tok = record.tokens
    print(f"\nfleet vs direct engine calls: {args.model}, {args.agents} DEV agents, 1 round, no judge, every "
          f"free-text call {args.max_tokens} tokens ({tok.calls} calls, {tok.completion_tokens} completion tokens)")
    print(f"{'stage':<26}{'fleet s':>9}{'direct s':>10}{'fleet/direct':>14}")
    for name, fw, dw in rows:
        if dw:
            print(f"{name:<26}{fw:>9.1f}{dw:>10.1f}{fw / dw:>13.2f}x")
    print(f"(the deliberation's own wall, setup and checks and score included: {record.duration_ms / 1000:.1f} s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2", help="embedded model id (smollm2: minutes; the coder model: ~4x)")
    p.add_argument("--max-tokens", type=int, default=96, help="every free-text call's exact length")
    p.add_argument("--agents", type=int, default=3)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
