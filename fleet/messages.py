"""Typed messages between the coordinator and its agents (never raw dicts across actors).

Shapes: the coordinator sends one `*Request` per call; an agent answers one `AgentReply` or raises.
Rounds are numbered from 1; round 0 is the first draft.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.config.task import Task

Stage = Literal["setup", "generate", "critique", "revise", "judge"]


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


class GenerateRequest(StrictModel):
    task: Task


class CritiqueRequest(StrictModel):
    task: Task
    round: int = Field(ge=1)
    author_id: str = Field(description="whose proposal is reviewed")
    proposal: str


class ReceivedCritique(StrictModel):
    critic_id: str
    content: str


class ReviseRequest(StrictModel):
    task: Task
    round: int = Field(ge=1)
    proposal: str = Field(description="the author's own current proposal")
    critiques: list[ReceivedCritique] = Field(min_length=1)


class AgentReply(StrictModel):
    agent_id: str
    content: str
    usage: CallUsage
