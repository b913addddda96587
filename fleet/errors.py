"""fleet's one error hierarchy.

Every error fleet raises on purpose derives from `FleetError` and carries the HTTP status an
ingress should answer with, so the mapping to HTTP lives here and nowhere else.

    FleetError
    ├── UserError            the caller's mistake: fix the input and retry      (4xx)
    │   ├── InvalidRequestError   a field is wrong; the message says which   (422)
    │   ├── UnauthorizedError     no or a wrong bearer token                 (401)
    │   ├── NotFoundError         unknown role, council, agent or id         (404)
    │   └── ConflictError         it exists already                          (409)
    ├── OverloadedError      the queue of accepted deliberations is full       (503 + Retry-After)
    ├── CoordinatorUnavailableError  the coordinator's process died; Ray restarts it (503 + Retry-After)
    ├── EngineError          an engine call failed (recoverable, per call)     (502)
    │   ├── EngineTimeoutError    the call ran past its timeout              (504)
    │   ├── EngineNotReadyError   no engine deployment to talk to            (503)
    │   └── EngineDeadError       the engine process died; Serve restarts it (503)
    ├── AgentCallError       an agent actor failed or died (wraps the cause)   (502)
    ├── StoreError           the state store cannot be opened, or a newer fleet wrote it (500)
    └── DeliberationFailedError   too few agents left (quorum), or cancelled (500)

Errors cross Ray actor boundaries, so they must pickle: keep constructor arguments simple.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:  # only for the type: every room imports this module, so it imports none of theirs
    from fleet.schemas.record import DeliberationRecord


class FleetError(Exception):
    """Base of every error fleet raises on purpose."""

    http_status: int = 500

    def to_dict(self) -> dict[str, Any]:
        """The JSON body an HTTP ingress returns for this error."""
        return {"error": type(self).__name__, "message": str(self)}


class UserError(FleetError):
    """The caller's mistake: the message says what to fix."""

    http_status = 400


class InvalidRequestError(UserError):
    http_status = 422


class UnauthorizedError(UserError):
    http_status = 401


class NotFoundError(UserError):
    http_status = 404


class ConflictError(UserError):
    http_status = 409


class OverloadedError(FleetError):
    """fleet accepted as many deliberations as it queues (`max_queued`): retry after `retry_after_s`.
    Nothing already accepted is dropped to make room."""

    http_status = 503
    retry_after_s = 10


class CoordinatorUnavailableError(FleetError):
    """The coordinator actor is down (its process died; Ray restarts it) or gone. The call did not
    happen or its answer was lost: retry after `retry_after_s`."""

    http_status = 503
    retry_after_s = 5


class EngineError(FleetError):
    """One engine call failed; the agent that made it is recorded as failed."""

    http_status = 502


class EngineTimeoutError(EngineError):
    http_status = 504


class EngineNotReadyError(EngineError):
    http_status = 503


class EngineDeadError(EngineError):
    """The engine's process died (vLLM's EngineDeadError): every request in flight on it is lost and
    Serve replaces the replica. Retry after the restart (`retry_after_s`)."""

    http_status = 503
    retry_after_s = 30


class AgentCallError(FleetError):
    """An agent actor raised or died; `cause_type` names the underlying error."""

    http_status = 502

    def __init__(self, message: str, cause_type: str = "") -> None:
        super().__init__(message)
        self.cause_type = cause_type

    def __reduce__(self) -> tuple[type[Self], tuple[str, str]]:  # keep cause_type across pickling (Ray)
        return (type(self), (str(self), self.cause_type))


class BudgetExhaustedError(FleetError):
    """A call was not started: the deliberation's token budget left could not cover its max_tokens."""

    http_status = 429


class StoreError(FleetError):
    """The state store (SQLite file or PostgreSQL database) cannot be opened or migrated."""

    http_status = 500


class DeliberationFailedError(FleetError):
    """The deliberation could not finish. `record` holds everything gathered up to the failure,
    so nothing already produced is lost."""

    http_status = 500

    def __init__(self, message: str, record: DeliberationRecord | None = None) -> None:
        super().__init__(message)
        self.record = record

    # Keep the record across pickling (Ray).
    def __reduce__(self) -> tuple[type[Self], tuple[str, DeliberationRecord | None]]:
        return (type(self), (str(self), self.record))


def explain(errors: Sequence[Any]) -> str:
    """One line from pydantic's `ValidationError.errors()` (FastAPI's included): 'field: what is wrong'.

    >>> explain([{"loc": ("body", "config", "rounds"), "msg": "Input should be >= 0"}])
    'config.rounds: Input should be >= 0'
    """
    return "; ".join(f"{field_of(e['loc'])}: {e['msg']}" for e in errors)


def field_of(loc: Sequence[Any]) -> str:
    """A validation error's field as a dotted path, without FastAPI's leading "body".

    >>> field_of(("body", "task", "tests", 0, "source"))
    'task.tests.0.source'
    """
    parts = [str(p) for p in loc][1:] if loc and loc[0] == "body" else [str(p) for p in loc]
    return ".".join(parts) or "request"
