"""The pluggable scorer interface and the default implementation.

A `Scorer` gets the final proposal of every live agent and returns, per author, its checks and
(optionally) a judge verdict, plus any judge failures; `feedback` gives what an author may see of
its own code between rounds (visible tests and lint). Ranking and selection stay outside, so a
scorer only measures. `RubricScorer` = the checks of `fleet.scoring.checks` + an optional LLM
judge; if the judge fails for any proposal, no verdict is used for any (totals must stay
comparable) and it says so.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.config.scoring import SandboxLimits
from fleet.config.task import Task
from fleet.schemas.record import AgentFailure, ExecutionFeedback
from fleet.schemas.scoring import Check, JudgeVerdict
from fleet.scoring import checks as checks_mod
from fleet.scoring.judge import JUDGE_ID, Judge


class ScoredProposal(StrictModel):
    author_id: str
    checks: list[Check]
    judge: JudgeVerdict | None = None


class ScoringOutcome(StrictModel):
    scored: list[ScoredProposal]
    failures: list[AgentFailure] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class Scorer(abc.ABC):
    @abc.abstractmethod
    async def score(self, task: Task, role: str, proposals: dict[str, str], call_timeout_s: float) -> ScoringOutcome:
        """proposals: author_id -> final text. Must not raise for one bad proposal."""

    async def feedback(self, task: Task, role: str, text: str, probes: Sequence[str] = ()) -> ExecutionFeedback | None:
        """What the author may see of its code (visible tests, lint, its behaviour on the visible tests'
        inputs and on `probes`, calls an agent wrote); None: nothing to show."""
        return None

    def judge_tokens(self) -> int:
        """Completion tokens one judged proposal may take (0: no LLM judge)."""
        return 0

    def without_judge(self) -> Scorer:
        """This scorer with no LLM judge (a token budget that cannot cover it)."""
        return self


class RubricScorer(Scorer):
    def __init__(self, judge: Judge | None = None, limits: SandboxLimits | None = None) -> None:
        self.judge, self.limits = judge, limits or SandboxLimits()

    async def feedback(self, task: Task, role: str, text: str, probes: Sequence[str] = ()) -> ExecutionFeedback | None:
        return await checks_mod.feedback(task, role, text, self.limits, probes)

    def judge_tokens(self) -> int:
        return self.judge.max_tokens if self.judge is not None else 0

    def without_judge(self) -> Scorer:
        return RubricScorer(None, self.limits)

    async def score(self, task: Task, role: str, proposals: dict[str, str], call_timeout_s: float) -> ScoringOutcome:
        authors = list(proposals)
        graded = await asyncio.gather(*(checks_mod.grade(task, role, proposals[a], self.limits) for a in authors))
        outcome = ScoringOutcome(
            scored=[ScoredProposal(author_id=a, checks=c) for a, c in zip(authors, graded, strict=True)])
        if self.judge is None:
            outcome.notes.append("judge disabled: totals leave it out")
            return outcome
        verdicts = await asyncio.gather(
            *(asyncio.wait_for(self.judge.verdict(task, a, proposals[a], c), call_timeout_s)
              for a, c in zip(authors, graded, strict=True)),
            return_exceptions=True,
        )
        judged: list[JudgeVerdict] = []
        for author, v in zip(authors, verdicts, strict=True):
            if not isinstance(v, BaseException):
                judged.append(v)
                continue
            if isinstance(v, asyncio.CancelledError):
                raise v
            outcome.failures.append(AgentFailure(agent_id=JUDGE_ID, stage="judge", round=0,
                                                 error_type=type(v).__name__, message=f"{author}: {v}"))
        if outcome.failures:
            outcome.notes.append(f"judge failed on {len(outcome.failures)} proposal(s): totals leave it out")
        else:
            for s, verdict in zip(outcome.scored, judged, strict=True):
                s.judge = verdict
        return outcome
