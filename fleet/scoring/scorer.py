"""The pluggable scorer interface and the default implementation.

A `Scorer` gets the final proposal of every live agent and returns, per author, its checks and
(optionally) a judge verdict, plus any judge failures. Ranking and selection stay outside, so a
scorer only measures. `RubricScorer` = deterministic checks + an optional LLM judge; if the judge
fails for any proposal, no verdict is used for any (scores must stay comparable) and it says so.
"""

from __future__ import annotations

import abc
import asyncio
from concurrent.futures import ThreadPoolExecutor

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.config.task import Task
from fleet.record import AgentFailure, Check, JudgeVerdict
from fleet.scoring.checks import DEFAULT_CHECKS, CheckFn, run_checks
from fleet.scoring.judge import JUDGE_ID, Judge

# One thread for every check in the process, across concurrent deliberations: CPython 3.11's
# ast.parse is not thread-safe ("AST constructor recursion depth mismatch", gh-106905).
_CHECKS_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-checks")


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


class RubricScorer(Scorer):
    def __init__(self, judge: Judge | None = None, checks: tuple[CheckFn, ...] = DEFAULT_CHECKS) -> None:
        self.judge, self.checks = judge, checks

    async def score(self, task: Task, role: str, proposals: dict[str, str], call_timeout_s: float) -> ScoringOutcome:
        authors = list(proposals)
        # Checks may grow into real work (parsing, sandboxes): keep them off the event loop.
        checks = await asyncio.get_running_loop().run_in_executor(
            _CHECKS_THREAD, lambda: [run_checks(role, proposals[a], self.checks) for a in authors])
        outcome = ScoringOutcome(
            scored=[ScoredProposal(author_id=a, checks=c) for a, c in zip(authors, checks, strict=True)])
        if self.judge is None:
            outcome.notes.append("judge disabled: totals are the checks' mean")
            return outcome
        verdicts = await asyncio.gather(
            *(asyncio.wait_for(self.judge.verdict(task, a, proposals[a]), call_timeout_s) for a in authors),
            return_exceptions=True,
        )
        for author, v in zip(authors, verdicts, strict=True):
            if isinstance(v, BaseException):
                if isinstance(v, asyncio.CancelledError):
                    raise v
                outcome.failures.append(AgentFailure(agent_id=JUDGE_ID, stage="judge", round=0,
                                                     error_type=type(v).__name__, message=f"{author}: {v}"))
        if outcome.failures:
            outcome.notes.append(f"judge failed on {len(outcome.failures)} proposal(s): totals use checks only")
        else:
            for s, v in zip(outcome.scored, verdicts, strict=True):
                s.judge = v
        return outcome
