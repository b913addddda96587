"""Typed messages between the coordinator and its agents (never raw dicts across actors).

Shapes: the coordinator sends one `*Request` per call; an agent answers one `AgentReply` or raises.
Rounds are numbered from 1; round 0 is the first draft.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.config.deliberation import PromptLayout, SamplingOverride
from fleet.config.task import Task

Stage = Literal["setup", "generate", "critique", "revise", "judge", "select", "probe"]


class CallUsage(StrictModel):
    """Tokens and time of one engine call."""

    agent_id: str
    stage: Stage
    round: int = Field(ge=0)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    latency_ms: float = Field(ge=0)
    finish_reason: Literal["stop", "length", "abort"]
    served_by: str = ""
    retries: int = Field(default=0, ge=0, description="re-sent because the engine had died and restarted")
    cached_tokens: int | None = Field(default=None, ge=0, description="of prompt_tokens, those vLLM's prefix "
                                      "cache supplied (not recomputed); None: the engine does not report it")
    start_ms: float | None = Field(default=None, ge=0, description="when the coordinator sent the call, in ms "
                                   "after the deliberation started (with end_ms: the call's span)")
    end_ms: float | None = Field(default=None, ge=0, description="when its reply was back, ms after the start")


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
        """>>> ExecutionFeedback(code_found=True, tests_passed=1, tests_total=2, failure="E  assert 3 == 4").render()
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


class GenerateRequest(StrictModel):
    task: Task
    sampling: SamplingOverride | None = Field(default=None, description="this call's sampling; None: the agent's")
    sample: int = Field(default=0, ge=0, le=1023, description="the n-th independent draft (its own seed)")
    layout: PromptLayout = "shared_prefix"


class CritiqueRequest(StrictModel):
    task: Task
    round: int = Field(ge=1)
    author_id: str = Field(description="whose proposal is reviewed")
    proposal: str
    feedback: ExecutionFeedback | None = None
    sampling: SamplingOverride | None = None
    layout: PromptLayout = "shared_prefix"


class ReceivedCritique(StrictModel):
    critic_id: str
    content: str


class ReviseRequest(StrictModel):
    task: Task
    round: int = Field(ge=1)
    proposal: str = Field(description="the author's own current proposal")
    critiques: list[ReceivedCritique] = Field(default_factory=list)
    feedback: ExecutionFeedback | None = Field(default=None, description="its code against the visible tests")
    sampling: SamplingOverride | None = None
    layout: PromptLayout = "shared_prefix"


class ProbeRequest(StrictModel):
    """Ask an agent for inputs to run every candidate on: calls of the code asked for, never outputs."""

    task: Task
    sampling: SamplingOverride | None = None
    layout: PromptLayout = "shared_prefix"


class Candidate(StrictModel):
    author_id: str
    content: str
    summary: str = Field(description="its scores, as the architect reads them")


class SelectRequest(StrictModel):
    task: Task
    candidates: list[Candidate] = Field(min_length=2)
    layout: PromptLayout = "shared_prefix"


class Decision(StrictModel):
    """The architect's structured choice among the candidates."""

    winner: str
    runner_up: str
    reasons: str


class AgentReply(StrictModel):
    agent_id: str
    content: str
    usage: CallUsage
