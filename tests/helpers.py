"""Builders shared by the tests (plain functions, not fixtures)."""

from __future__ import annotations

from collections.abc import Callable

from fleet.agents.agent import Agent
from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationConfig, DeliberationRequest, SamplingOverride
from fleet.config.engine import FakeEngineConfig
from fleet.config.task import Rubric, Task
from fleet.coordinator.councils import CouncilRegistry
from fleet.coordinator.deliberation import Deliberation
from fleet.coordinator.pool import LocalPool
from fleet.coordinator.state_store import Checkpoint
from fleet.engine.fake import FakeEngine
from fleet.scoring.judge import Judge
from fleet.scoring.scorer import RubricScorer

RUBRIC_TEXT = "Every login attempt beyond five per minute is answered with HTTP 429."


def make_task(**kw) -> Task:
    return Task(description="Add rate limiting to the login endpoint",
                rubric=Rubric(criteria={"limits": RUBRIC_TEXT}), **kw)


def local_deliberation(n: int = 3, rounds: int = 1, topology: str = "all_pairs", judge: bool = True,
                       engine: FakeEngine | None = None, role: str = "DEV", task: Task | None = None,
                       sampling: SamplingOverride | None = None, checkpoint: Checkpoint | None = None,
                       on_checkpoint: Callable[[Checkpoint], None] | None = None,
                       **cfg) -> tuple[Deliberation, FakeEngine]:
    """A deliberation over in-process agents sharing one fake engine (so its call log is complete),
    with the standing architect in the pool."""
    engine = engine or FakeEngine(FakeEngineConfig())
    council = CouncilSpec.default(role, n)
    architect = CouncilRegistry([], 3, 256).architect_for(council)
    pool = LocalPool({a.agent_id: Agent(a, engine, "fake") for a in [*council.agents, architect]})
    config = DeliberationConfig(rounds=rounds, topology=topology, judge=judge, **cfg)
    request = DeliberationRequest(task=task or make_task(), role=role, config=config, sampling=sampling)
    scorer = RubricScorer(Judge(engine, "fake", layout=config.prompt_layout) if judge else None, config.sandbox)
    return Deliberation(request, council, pool, scorer, architect_id=architect.agent_id, checkpoint=checkpoint,
                        on_checkpoint=on_checkpoint), engine
