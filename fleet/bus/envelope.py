"""What travels on the bus: the plan-approved envelope fleet reads, and the results it publishes.

Every message is JSON of one of these strict models (unknown fields refused, `version` checked), so
producer and consumer cannot drift apart silently. `parse_plan` turns raw bytes into a validated
event or the reason it is refused. What this file leaves out: NATS itself (`consumer.py`,
`watcher.py`, `publisher.py`).

    planning.plan.approved               PlanApprovedEnvelope   (in)
    <prefix>.dispatch.accepted           DispatchAccepted       one per role: its deliberation, or why none
    <prefix>.dispatch.rejected           DispatchRejected       an event that did not parse or validate
    <prefix>.deliberation.started        DeliberationStarted
    <prefix>.deliberation.completed      DeliberationCompleted  winner, scores, tokens, wall, URL
    <prefix>.deliberation.failed         DeliberationFailed     error type and message, partial record URL
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Final, Literal, TypedDict

from pydantic import AwareDatetime, Field, ValidationError, field_validator

from fleet.config._base import StrictModel
from fleet.errors import explain
from fleet.schemas.api import DeliberationState, PlanApproved
from fleet.schemas.usage import TokenTotals

BUS_VERSION: Final = 1


class PlanApprovedEnvelope(PlanApproved):
    """`PlanApproved` (the HTTP body) plus the envelope's version and timestamps."""

    version: int = Field(description="envelope version; this fleet reads 1 and refuses any other")
    approved_at: AwareDatetime = Field(description="when the plan was approved (with its time zone)")
    published_at: AwareDatetime | None = Field(default=None, description="when the planner published the event")

    @field_validator("version")
    @classmethod
    def _known(cls, version: int) -> int:
        if version != BUS_VERSION:
            raise ValueError(f"unknown envelope version {version}: this fleet reads version {BUS_VERSION}")
        return version

    def plan(self) -> PlanApproved:
        """The event the coordinator dispatches (the same type the HTTP route takes)."""
        return PlanApproved.model_validate(self.model_dump(include=set(PlanApproved.model_fields)))


def parse_plan(data: bytes) -> PlanApprovedEnvelope | str:
    """The validated event, or why it is refused (one line).

    >>> parse_plan(b"{not json")
    'not JSON: Expecting property name enclosed in double quotes at char 1'
    """
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"not JSON: {e.msg if isinstance(e, json.JSONDecodeError) else e} at char {getattr(e, 'pos', 0)}"
    if not isinstance(body, dict):
        return f"not a JSON object: {type(body).__name__}"
    try:
        return PlanApprovedEnvelope.model_validate(body)
    except ValidationError as e:
        return f"invalid event: {explain(e.errors())}"


def _now() -> datetime:
    return datetime.now(UTC)


class BusEvent(StrictModel):
    version: Literal[1] = BUS_VERSION
    at: datetime = Field(default_factory=_now, description="when fleet published it")


class PlanRef(BusEvent):
    event_id: str
    plan_id: str
    story_id: str
    role: str


class RefFields(TypedDict):
    """The fields of a `PlanRef`, to carry from one event to the next."""

    event_id: str
    plan_id: str
    story_id: str
    role: str


def ref_fields(ref: PlanRef) -> RefFields:
    """Which plan, story and role `ref` is about: the start of every event that follows from it."""
    return {"event_id": ref.event_id, "plan_id": ref.plan_id, "story_id": ref.story_id, "role": ref.role}


class DispatchAccepted(PlanRef):
    """fleet's durable note that a role was dispatched (or could not be): the watcher works from it."""

    deliberation_id: str | None = Field(description="None: the role could not be dispatched (error says why)")
    error_type: str | None = None
    error: str | None = None


class DispatchRejected(BusEvent):
    reason: str = Field(description="why the message was refused: not JSON, invalid field, unknown version")
    subject: str
    stream: str
    stream_seq: int
    delivered: int = Field(description="how many times the server had delivered it")
    raw: str = Field(description="the message's first 2 KiB, as text")


class DeliberationStarted(PlanRef):
    deliberation_id: str
    url: str


class DeliberationCompleted(PlanRef):
    deliberation_id: str
    url: str
    status: Literal["completed", "degraded"]
    winner_id: str | None
    scores: dict[str, float] = Field(description="author_id -> total score (0..1), best first")
    tokens: TokenTotals
    wall_ms: float


class DeliberationFailed(PlanRef):
    deliberation_id: str | None = Field(description="None: it never started (the dispatch failed)")
    url: str | None = Field(description="the partial record (GET), when there is one")
    error_type: str
    error: str


def outcome(ref: DispatchAccepted, state: DeliberationState, url: str) -> DeliberationCompleted | DeliberationFailed:
    """The result event of a finished deliberation."""
    base = ref_fields(ref)
    did = state.deliberation_id
    record = state.record
    if state.status == "done" and record is not None and record.status in ("completed", "degraded"):
        status: Literal["completed", "degraded"] = "completed" if record.status == "completed" else "degraded"
        return DeliberationCompleted(**base, deliberation_id=did, url=url, status=status,
                                     winner_id=record.selection.winner_id if record.selection else None,
                                     scores={s.author_id: s.total for s in record.scores}, tokens=record.tokens,
                                     wall_ms=record.duration_ms)
    error_type = {"cancelled": "Cancelled", "failed": "DeliberationFailedError"}.get(state.status, "Failed")
    return DeliberationFailed(**base, deliberation_id=did, url=url, error_type=error_type,
                              error=state.error or (record.error if record else None) or state.status)
