"""The coordinator's durable state as one typed contract: `StateStore`, what a backend implements.

A backend keeps councils, deliberations (state + record), their events, plan answers, and the resume
point of every unfinished deliberation (`StoredRun`, its `Checkpoint`). The coordinator writes through it as things
change and reads it once, when it starts (`load`); a restarted coordinator rebuilds itself from that
`Snapshot`. Two implementations: `SqlStore` (store.py: SQLite or PostgreSQL) and `NullStore` here, for
a fleet configured without `state_path`/`state_url` (its state lives and dies with the coordinator).

Conventions every method follows: it blocks (the coordinator calls it on one IO thread, in order:
writer.py), it raises on failure (`StoreError` or the driver's own error; the writer counts it), and a
write is idempotent: the same call twice leaves the same rows as once (upserts keyed by id, deletes of
what may already be gone). What this file leaves out: a database, and when the coordinator writes.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from fleet.config._base import StrictModel
from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationRequest
from fleet.schemas.api import DeliberationEvent, DeliberationState, PlanDispatch
from fleet.schemas.record import DeliberationRecord


class Checkpoint(StrictModel):
    """A deliberation after its last completed stage: what a restarted coordinator resumes from.
    `round` 0: the drafts are in; r: review round r (critique + revise) is done."""

    round: int = Field(ge=0)
    live: list[str] = Field(description="the agents still in the deliberation")
    record: DeliberationRecord = Field(description="the partial record: every output so far")


class StoredRun(BaseModel):
    """An unfinished deliberation's resume point: checkpoint None means no stage had completed."""

    request: DeliberationRequest
    council: CouncilSpec
    events: int = 0  # events emitted up to the checkpoint (later ones are dropped on resume)
    checkpoint: Checkpoint | None = None


class Snapshot(BaseModel):
    """Everything a store holds, as a starting coordinator reads it."""

    councils: list[CouncilSpec]  # in registration order
    deliberations: list[tuple[DeliberationState, list[DeliberationEvent]]]  # oldest first
    plans: list[PlanDispatch]
    runs: dict[str, StoredRun] = {}  # deliberation id -> resume point (unfinished ones only)
    unreadable: list[str] = []  # ids of deliberations whose stored state or events no longer validate


class StateStore(Protocol):
    """Durable coordinator state. Blocking, raising, idempotent writes (see the module docstring)."""

    @property
    def location(self) -> str | None:
        """Where the state lives, any password hidden (for status and logs); None: nowhere."""

    @property
    def dialect(self) -> str | None:
        """The database behind it (`sqlite`, `postgresql`); None: no database."""

    def load(self) -> Snapshot:
        """Everything stored, read once by a starting coordinator. A deliberation whose rows no longer
        validate is left in place and named in `Snapshot.unreadable`, never fatal."""

    def get_state(self, deliberation_id: str) -> DeliberationState | None:
        """One deliberation's stored state (None: absent); for readers without a coordinator (the CLI)."""

    def put_council(self, spec: CouncilSpec) -> None:
        """A council created or changed (agents added or removed). Upsert by role; an update keeps the
        council's place in the registration order."""

    def delete_council(self, role: str) -> None:
        """A council deleted. Deleting an absent one does nothing."""

    def put_state(self, state: DeliberationState) -> None:
        """A deliberation's lifecycle state (and record, once it has one), after each status change.
        Upsert by deliberation id: the last write wins."""

    def add_event(self, event: DeliberationEvent) -> None:
        """One event of a deliberation, as it is emitted. Upsert by (deliberation id, seq)."""

    def delete_deliberation(self, deliberation_id: str) -> None:
        """A finished deliberation evicted from the coordinator (`max_tracked`): its state, events and
        any resume point go."""

    def truncate_events(self, deliberation_id: str, keep: int) -> None:
        """Drop the deliberation's events after seq `keep`: a resumed run emits them again."""

    def put_run(self, deliberation_id: str, request: DeliberationRequest, council: CouncilSpec, events: int) -> None:
        """A deliberation accepted (`events` emitted so far): what resuming it needs before any stage
        completes. Written before `submit` returns; a second put of the same id keeps the first."""

    def put_checkpoint(self, deliberation_id: str, events: int, checkpoint: Checkpoint) -> None:
        """A stage completed: the run's new resume point, with the number of events emitted up to it.
        Replaces the previous checkpoint; no row (the run ended): nothing happens."""

    def delete_run(self, deliberation_id: str) -> None:
        """The deliberation ended (after its final state is put): nothing to resume."""

    def put_plan(self, answer: PlanDispatch) -> None:
        """The answer to a plan event, before the coordinator returns it (the bus acks only then).
        Upsert by event id: a repeat that started refused roles replaces the answer."""

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""


class NullStore:
    """No durable state: every write is dropped, `load` finds nothing. For a fleet configured without
    `state_path`/`state_url`; its coordinator's state ends with its process."""

    location: str | None = None
    dialect: str | None = None

    def load(self) -> Snapshot:
        return Snapshot(councils=[], deliberations=[], plans=[])

    def get_state(self, deliberation_id: str) -> DeliberationState | None:
        return None

    def put_council(self, spec: CouncilSpec) -> None:
        pass

    def delete_council(self, role: str) -> None:
        pass

    def put_state(self, state: DeliberationState) -> None:
        pass

    def add_event(self, event: DeliberationEvent) -> None:
        pass

    def delete_deliberation(self, deliberation_id: str) -> None:
        pass

    def truncate_events(self, deliberation_id: str, keep: int) -> None:
        pass

    def put_run(self, deliberation_id: str, request: DeliberationRequest, council: CouncilSpec, events: int) -> None:
        pass

    def put_checkpoint(self, deliberation_id: str, events: int, checkpoint: Checkpoint) -> None:
        pass

    def delete_run(self, deliberation_id: str) -> None:
        pass

    def put_plan(self, answer: PlanDispatch) -> None:
        pass

    def close(self) -> None:
        pass
