"""The deliberation record: everything a deliberation produced, typed, in one object, and its parts
(proposals with their execution feedback and call usage, critiques, failures, the selection, timings,
token totals); also the drafts of a sample request.

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
from fleet.schemas.scoring import ScoreCard
from fleet.schemas.usage import CallUsage, Stage, TokenTotals
from fleet.selection.models import Behaviour


class ExecutionFeedback(StrictModel):
    """What a proposal's code did against the *visible* tests and the linter: shown to its author
    (and its critics) to revise by. Hidden tests never contribute to it."""

    code_found: bool
    truncated: bool = Field(default=False, description="its code block was cut off by max_tokens")
    parse_error: str | None = None
    lint: list[str] = Field(default_factory=list, description="ruff findings")
    tests_passed: int = Field(default=0, ge=0)
    tests_total: int = Field(default=0, ge=0, description="0: the task has no visible tests")
    failure: str = Field(default="", description="the first failing visible test's output, truncated")
    crash: str = Field(default="", description="why the module failed to import (e.g. NameError: name 're' is not "
                       "defined): every call of it fails")
    counterexample: str = Field(default="", description="the first visible input it raises on or answers wrongly: "
                                "input, expected, what it returned or raised")
    outputs: list[str] | None = Field(default=None, description="its repr on each of `inputs` (grouping while "
                                      "rounds run); None: not run")
    inputs: list[str] = Field(default_factory=list, description="the probe inputs `outputs` answer")
    disagreement: str = Field(default="", description="an input where it differs from the leading group of the "
                              "other candidates: the input, their output, its own")

    @property
    def failing(self) -> bool:
        """A failed visible test, a crash, or a counterexample: what repair is aimed at."""
        return bool(self.crash or self.counterexample) or self.tests_passed < self.tests_total

    @property
    def all_passed(self) -> bool:
        return self.tests_total > 0 and self.tests_passed == self.tests_total

    def render(self) -> str:
        r"""What the author and its critics are told of the checks.

        >>> ExecutionFeedback(code_found=True, tests_passed=1, tests_total=2, failure="E  assert 3 == 4").render()
        'Visible tests: 1/2 passed. First failure:\nE  assert 3 == 4\nLint: no findings.'
        """
        if not self.code_found:
            return "No Python code block was found: put the whole solution in one ```python block."
        lines = []
        if self.crash:
            lines.append(f"Importing the code fails: {self.crash}")
        if self.counterexample:
            lines.append(f"Counterexample:\n{self.counterexample}")
        if self.disagreement:
            lines.append(f"Most other candidates answer differently:\n{self.disagreement}")
        if self.truncated:
            lines.append("The code block was cut off (too long): write shorter, complete code.")
        if self.parse_error:
            lines.append(f"The code does not parse: {self.parse_error}.")
        if self.tests_total:
            lines.append(f"Visible tests: {self.tests_passed}/{self.tests_total} passed."
                         + (f" First failure:\n{self.failure.strip()}" if self.failure.strip() else ""))
        lines.append("Lint: " + ("; ".join(self.lint[:8]) if self.lint else "no findings") + ".")
        return "\n".join(lines)


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


class SampleResult(StrictModel):
    """The drafts of a `SampleRequest`, in request order (a failed draft is a failure, not a draft)."""

    drafts: list[Proposal] = Field(default_factory=list)
    failures: list[AgentFailure] = Field(default_factory=list)
    tokens: TokenTotals = Field(default_factory=TokenTotals)
    wall_ms: float = Field(default=0.0, ge=0)
