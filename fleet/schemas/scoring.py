"""How a proposal scored: each check (parses, lint, tests, structure), the judge's verdict per
criterion, and the score card that ranks it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.schemas.usage import CallUsage

CheckStatus = Literal["passed", "failed", "skipped"]


class Check(StrictModel):
    """One scoring check on a proposal: passed, failed, or skipped (does not apply)."""

    name: str
    status: CheckStatus
    score: float = Field(ge=0.0, le=1.0)
    detail: str = ""
    tests_passed: int | None = Field(default=None, ge=0)
    tests_total: int | None = Field(default=None, ge=0)
    output: str = Field(default="", description="the first failure's output, truncated")
    sandbox: str | None = Field(default=None, description="where the tests ran: bwrap or rlimit")

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class CriterionScore(StrictModel):
    criterion: str
    score: int = Field(ge=1, le=10)
    reason: str


class JudgeVerdict(StrictModel):
    criteria: list[CriterionScore] = Field(min_length=1, description="one score and reason per rubric criterion")
    usage: CallUsage

    @property
    def score(self) -> float:
        """The mean criterion score, 1..10."""
        return sum(c.score for c in self.criteria) / len(self.criteria)


class ScoreCard(StrictModel):
    author_id: str
    candidate_id: str | None = Field(default=None, description="the proposal scored (author@rN); None in records "
                                     "older than every-candidate scoring: the author's last proposal")
    checks: list[Check]
    judge: JudgeVerdict | None = None
    components: dict[str, float] = Field(
        default_factory=dict, description="tests / lint / judge / structure in 0..1, those that apply")
    total: float = Field(ge=0.0, le=1.0, description="weighted mean of the components (config.scoring)")
    rank: int = Field(ge=1, description="1 = best")
