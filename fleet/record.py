"""The deliberation record: everything a deliberation produced, typed, in one object.

It is what the CLI prints, what the HTTP API returns and what a job writes per line. Failed calls
are here as `AgentFailure`s, next to (never instead of) the real proposals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationConfig, SamplingOverride
from fleet.config.engine import EngineInfo
from fleet.config.task import Task
from fleet.messages import CallUsage, ExecutionFeedback, Stage
from fleet.selection.models import Behaviour


class Proposal(StrictModel):
    author_id: str
    role: str
    round: int = Field(ge=0, description="0: first draft; r: revised in round r")
    content: str
    usage: CallUsage
    feedback: ExecutionFeedback | None = Field(
        default=None, description="its code against the visible tests and the linter (what its author is shown)")
    parent_id: str | None = Field(default=None, description="a revision: the candidate it revises (its author's "
                                  "proposal of the round before); None: a draft (or a record older than lineage)")

    @property
    def candidate_id(self) -> str:
        """Unique in a deliberation (one proposal per author and round).

        >>> Proposal(author_id="a1", role="DEV", round=2, content="x", usage=CallUsage(agent_id="a1",
        ...     stage="revise", round=2, prompt_tokens=1, completion_tokens=1, latency_ms=0, finish_reason="stop")
        ... ).candidate_id
        'a1@r2'
        """
        return candidate_id(self.author_id, self.round)


def candidate_id(author_id: str, round_: int) -> str:
    return f"{author_id}@r{round_}"


class Critique(StrictModel):
    critic_id: str
    author_id: str = Field(description="whose proposal this reviews")
    round: int = Field(ge=1)
    content: str
    usage: CallUsage


class AgentFailure(StrictModel):
    agent_id: str
    stage: Stage
    round: int = Field(ge=0)
    error_type: str
    message: str


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


SelectionMethod = Literal["architect", "top-score", "consensus"]


class Selection(StrictModel):
    winner_id: str = Field(description="the author of the winning candidate")
    winner_candidate: str | None = Field(default=None, description="the winning proposal (author@rN); None in older "
                                         "records: the author's last proposal")
    candidates: list[str] = Field(min_length=1, description="those considered, best first: candidate ids (older "
                                  "records: author ids)")
    reason: str
    method: SelectionMethod
    runner_up: str | None = None
    architect_id: str | None = Field(default=None, description="the ARCHITECT agent that chose (method architect)")
    usage: CallUsage | None = None


class PhaseTiming(StrictModel):
    """One stage's wall: how long at least one of its calls was in flight. In a review round the
    critiques, revisions and checks overlap (pipelined), so a round's stages can add up to more than
    the round; each call's own span is in `usage` (start_ms, end_ms)."""

    phase: Literal["setup", "generate", "check", "critique", "revise", "score", "select"]
    round: int = Field(ge=0)
    wall_ms: float = Field(ge=0)


class TokenTotals(StrictModel):
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int | None = Field(default=None, description="of prompt_tokens, those the engine's "
                                             "prefix cache supplied; None: no call reported it")

    @classmethod
    def of(cls, usage: list[CallUsage]) -> TokenTotals:
        reported = [u.cached_tokens for u in usage if u.cached_tokens is not None]
        return cls(calls=len(usage), prompt_tokens=sum(u.prompt_tokens for u in usage),
                   completion_tokens=sum(u.completion_tokens for u in usage),
                   cached_prompt_tokens=sum(reported) if reported else None)

    @property
    def prefix_hit_rate(self) -> float | None:
        """Share of prompt tokens served from the prefix cache (None: not reported)."""
        if self.cached_prompt_tokens is None or not self.prompt_tokens:
            return None
        return self.cached_prompt_tokens / self.prompt_tokens

    def cache_text(self) -> str:
        """', 62% of prompt tokens from the prefix cache', or '' when the engine does not say."""
        rate = self.prefix_hit_rate
        return "" if rate is None else f", {rate:.0%} of prompt tokens from the prefix cache"


class DeliberationRecord(StrictModel):
    deliberation_id: str
    status: Literal["completed", "degraded", "failed", "cancelled"] = Field(
        description="degraded: finished with a quorum after some agents failed"
    )
    task: Task
    council: CouncilSpec
    config: DeliberationConfig
    sampling: SamplingOverride | None = Field(default=None, description="the request's sampling, on every agent call")
    quorum: int
    proposals: list[Proposal] = Field(default_factory=list, description="every draft and revision")
    critiques: list[Critique] = Field(default_factory=list)
    failures: list[AgentFailure] = Field(default_factory=list)
    scores: list[ScoreCard] = Field(default_factory=list, description="best first")
    selection: Selection | None = None
    timings: list[PhaseTiming] = Field(default_factory=list)
    usage: list[CallUsage] = Field(default_factory=list, description="one entry per engine call")
    tokens: TokenTotals = Field(default_factory=TokenTotals)
    engine: EngineInfo | None = Field(default=None, description="the engine the calls ran on (older records: None)")
    notes: list[str] = Field(default_factory=list, description="what the coordinator decided and why")
    behaviour: Behaviour | None = Field(default=None, description="code tasks: probe inputs, each candidate's "
                                        "outputs on them and the groups that agree (None: prose, or older records)")
    oracle_pool: bool | None = Field(default=None, description="some candidate passes every hidden test (coverage, "
                                     "apart from selection); None: no hidden tests")
    stage_tokens: dict[str, int] = Field(default_factory=dict, description="completion tokens spent per stage")
    started_at: datetime
    duration_ms: float = 0.0
    error: str | None = None

    @property
    def winner_id(self) -> str | None:
        return self.selection.winner_id if self.selection else None

    def failed_agents(self) -> set[str]:
        return {f.agent_id for f in self.failures}

    def proposal(self, candidate: str) -> Proposal | None:
        return next((p for p in self.proposals if p.candidate_id == candidate), None)

    def winning_proposal(self) -> Proposal | None:
        """The proposal that won (in an older record: its author's last one)."""
        if self.selection is None:
            return None
        if self.selection.winner_candidate is not None:
            return self.proposal(self.selection.winner_candidate)
        return next((p for p in reversed(self.proposals) if p.author_id == self.selection.winner_id), None)


class Checkpoint(StrictModel):
    """A deliberation after its last completed stage: what a restarted coordinator resumes from.
    `round` 0: the drafts are in; r: review round r (critique + revise) is done."""

    round: int = Field(ge=0)
    live: list[str] = Field(description="the agents still in the deliberation")
    record: DeliberationRecord = Field(description="the partial record: every output so far")


class SampleResult(StrictModel):
    """The drafts of a `SampleRequest`, in request order (a failed draft is a failure, not a draft)."""

    drafts: list[Proposal] = Field(default_factory=list)
    failures: list[AgentFailure] = Field(default_factory=list)
    tokens: TokenTotals = Field(default_factory=TokenTotals)
    wall_ms: float = Field(default=0.0, ge=0)


Lifecycle = Literal["queued", "running", "done", "failed", "cancelled"]


class StatusChange(StrictModel):
    status: Lifecycle
    error: str | None = None


EventType = Literal["status", "proposal", "critique", "revision", "failure", "score", "winner"]


class DeliberationEvent(StrictModel):
    """One thing that happened in a deliberation, in order (`seq` from 1), as SSE streams it."""

    seq: int = Field(ge=1)
    deliberation_id: str
    type: EventType
    at: datetime
    data: StatusChange | Proposal | Critique | AgentFailure | ScoreCard | Selection


class DeliberationState(StrictModel):
    """A deliberation as the API reports it: lifecycle status, and the record once there is one
    (partial when it failed or was cancelled)."""

    deliberation_id: str
    role: str
    task_id: str
    story_id: str | None = None
    status: Lifecycle
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    record: DeliberationRecord | None = None
