"""Typed messages between the coordinator and its agents (never raw dicts across actors).

Shapes: the coordinator sends one `*Request` per call; an agent answers one `AgentReply` or raises.
Rounds are numbered from 1; round 0 is the first draft.
"""

from __future__ import annotations

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.config.deliberation import PromptLayout, SamplingOverride
from fleet.config.task import Task
from fleet.schemas.record import ExecutionFeedback
from fleet.schemas.usage import CallUsage


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
