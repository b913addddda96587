"""What the API speaks: the bodies callers send (a deliberation, a plan-approved event), the answers
and states it returns, and the events it streams. The driver, HTTP, jobs and the bus all use these.

`DeliberationInput.to_request(defaults)` turns a body into the strict `DeliberationRequest` the
coordinator runs, so every entry point validates and defaults identically.

>>> from fleet.config.deliberation import DeliberationConfig
>>> DeliberationInput(task="Add a cache", rounds=2).to_request(DeliberationConfig()).config.rounds
2
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from fleet.config._base import StrictModel
from fleet.config.council import MAX_AGENTS, CouncilSpec
from fleet.config.deliberation import MAX_ROUNDS, DeliberationConfig, DeliberationRequest, SamplingOverride, Topology
from fleet.config.roles import RoleName
from fleet.config.task import Task
from fleet.schemas.record import AgentFailure, Critique, DeliberationRecord, Proposal, Selection
from fleet.schemas.scoring import ScoreCard


class DeliberationInput(StrictModel):
    task: Task | str = Field(description="a Task, or just its description")
    role: RoleName = "DEV"
    num_agents: int | None = Field(default=None, ge=1, le=MAX_AGENTS)
    persona: str | None = Field(default=None, min_length=1, max_length=4000, description="for a custom role")
    council: CouncilSpec | None = None
    rounds: int | None = Field(default=None, ge=0, le=MAX_ROUNDS)
    topology: Topology | None = None
    k: int | None = Field(default=None, ge=1, le=64)
    quorum: int | None = Field(default=None, ge=1)
    judge: bool | None = None
    sampling: SamplingOverride | None = None

    def to_request(self, defaults: DeliberationConfig) -> DeliberationRequest:
        """Raises pydantic's ValidationError (callers turn it into InvalidRequestError)."""
        task = Task(description=self.task) if isinstance(self.task, str) else self.task
        if self.k is not None:
            task = Task.model_validate({**task.model_dump(), "k": self.k})
        overrides = {name: value for name in ("rounds", "topology", "quorum", "judge")
                     if (value := getattr(self, name)) is not None}
        config = DeliberationConfig.model_validate({**defaults.model_dump(), **overrides})
        return DeliberationRequest(task=task, role=self.role, num_agents=self.num_agents, persona=self.persona,
                                   council=self.council, sampling=self.sampling, config=config)


class PlanApproved(StrictModel):
    event_id: str = Field(min_length=1, max_length=128, description="idempotency key: a repeat starts nothing")
    plan_id: str = Field(min_length=1, max_length=128)
    story_id: str = Field(min_length=1, max_length=128)
    roles: list[RoleName] = Field(min_length=1, max_length=16, description="one deliberation per role")
    task: Task
    config: DeliberationConfig | None = Field(default=None, description="None: the fleet's defaults")

    @field_validator("roles")
    @classmethod
    def _unique(cls, roles: list[str]) -> list[str]:
        if len(set(roles)) != len(roles):
            raise ValueError(f"roles must be unique, got {roles}")
        return roles


class RoleDispatch(StrictModel):
    role: str
    deliberation_id: str | None = None
    error_type: str | None = None
    error: str | None = None


class PlanDispatch(StrictModel):
    event_id: str
    plan_id: str
    story_id: str
    total: int
    started: int
    failed: int
    results: list[RoleDispatch]

    def refused(self) -> list[str]:
        """Roles the full queue refused (`OverloadedError`): a repeat of the event tries them again."""
        return [r.role for r in self.results if r.error_type == "OverloadedError"]


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
