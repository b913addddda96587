"""Deliberations the coordinator knows about: lifecycle, record, and an ordered event log.

    queued --(a run slot frees)--> running --> done | failed | cancelled

Each `Tracked` keeps every event it emitted (seq 1, 2, ...) so an SSE client that joins late or
reconnects with Last-Event-ID gets the past first, then waits (`wait_events`) for what comes next.
What this file leaves out: persistence (the coordinator writes each event through `on_change`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fleet.config.deliberation import DeliberationRequest
from fleet.schemas.api import DeliberationEvent, DeliberationState, EventType, Lifecycle, StatusChange
from fleet.schemas.record import DeliberationRecord

FINISHED: frozenset[Lifecycle] = frozenset({"done", "failed", "cancelled"})


OnChange = Callable[["Tracked", DeliberationEvent], None]


class Tracked:
    def __init__(self, deliberation_id: str, request: DeliberationRequest | None, role: str,
                 on_change: OnChange | None = None, state: DeliberationState | None = None,
                 events: list[DeliberationEvent] | None = None, resume_at: int | None = None) -> None:
        """A new deliberation (request given), or one restored from a store (state and events given).
        A restored unfinished one is resumed when `resume_at` is given (its events after that seq are
        dropped; it is queued again), otherwise it comes back failed ("interrupted").
        on_change(tracked, event) follows every event (the coordinator persists through it)."""
        self.request = request
        self._on_change = on_change
        self.events: list[DeliberationEvent] = list(events or [])
        self.task: asyncio.Task[None] | None = None  # None: restored finished, nothing runs
        self._changed = asyncio.Condition()
        if state is not None:
            self.state = state
            if self.finished:
                return
            if resume_at is not None and request is not None:
                del self.events[resume_at:]
                self.set_status("queued")
            else:  # its coordinator stopped while it ran: nothing will finish it now
                self.set_status("failed", error="interrupted: the coordinator stopped before it finished")
            return
        assert request is not None
        self.state = DeliberationState(deliberation_id=deliberation_id, role=role, task_id=request.task.task_id,
                                       story_id=request.task.story_id, status="queued", created_at=_now())
        self.emit("status", StatusChange(status="queued"))

    @property
    def finished(self) -> bool:
        return self.state.status in FINISHED

    def emit(self, kind: EventType, payload: Any) -> None:
        """Append an event and wake every waiter (sync: called from inside the deliberation)."""
        event = DeliberationEvent(seq=len(self.events) + 1, deliberation_id=self.state.deliberation_id,
                                  type=kind, at=_now(), data=payload)
        self.events.append(event)
        if self._on_change is not None:
            self._on_change(self, event)
        try:
            asyncio.get_running_loop().create_task(self._notify())
        except RuntimeError:  # restoring in a constructor: no loop, and no waiter to wake yet
            pass

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def set_status(self, status: Lifecycle, record: DeliberationRecord | None = None, error: str | None = None) -> None:
        now = _now()
        self.state = self.state.model_copy(update={
            "status": status,
            "record": record if record is not None else self.state.record,
            "error": error,
            "started_at": self.state.started_at or (now if status == "running" else None),
            "finished_at": now if status in FINISHED else None,
        })
        self.emit("status", StatusChange(status=status, error=error))

    async def wait_events(self, after: int, timeout_s: float) -> tuple[list[DeliberationEvent], bool]:
        """Events with seq > after; waits up to timeout_s for one when there are none yet.
        Returns (events, finished): finished means no event will ever follow the last one."""
        if len(self.events) <= after and not self.finished:
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait_for(lambda: len(self.events) > after), timeout_s)
                except TimeoutError:
                    pass
        return self.events[after:], self.finished


def _now() -> datetime:
    return datetime.now(UTC)
