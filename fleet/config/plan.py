"""The "plan approved" event that auto-dispatches one deliberation per role, and its answer."""

from __future__ import annotations

from pydantic import Field, field_validator

from fleet.config._base import StrictModel
from fleet.config.deliberation import DeliberationConfig
from fleet.config.roles import RoleName
from fleet.config.task import Task


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
