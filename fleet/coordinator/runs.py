"""The deliberations a coordinator runs: accepting one, running it in a slot, recording how it ended,
and answering for it (get, list, wait, events, cancel).

    submit -> Admission (refuse at the door) -> put_run -> queued -> slot -> Deliberation -> finished

Every event a deliberation emits is written through to the store as it happens (`on_change`), so a
restarted coordinator can resume it (recovery.py). At most `max_tracked` finished ones are kept.
What this file leaves out: the deliberation itself (deliberation.py), the door (admission.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationRequest
from fleet.config.fleet import FleetConfig
from fleet.coordinator.actors import AgentActors
from fleet.coordinator.admission import Admission
from fleet.coordinator.councils import CouncilRegistry
from fleet.coordinator.deliberation import Deliberation, new_deliberation_id
from fleet.coordinator.metrics import FleetMetrics
from fleet.coordinator.state_store import Checkpoint
from fleet.coordinator.tracking import FINISHED, Tracked
from fleet.coordinator.writer import StoreWriter
from fleet.engine.protocol import EngineClient
from fleet.errors import ConflictError, DeliberationFailedError, NotFoundError
from fleet.schemas.api import DeliberationEvent, DeliberationState, Lifecycle
from fleet.schemas.record import AgentFailure, DeliberationRecord
from fleet.scoring.judge import Judge
from fleet.scoring.scorer import RubricScorer

log = logging.getLogger(__name__)


class Runs:
    def __init__(self, config: FleetConfig, engine: EngineClient, councils: CouncilRegistry, agents: AgentActors,
                 admission: Admission, store: StoreWriter, metrics: FleetMetrics) -> None:
        self.config, self.engine, self.councils, self.agents = config, engine, councils, agents
        self.admission, self.store, self.metrics = admission, store, metrics
        self.tracked: dict[str, Tracked] = {}  # deliberation_id -> state, in submission order
        self.counts: Counter[tuple[str, str]] = Counter()  # (role, record or lifecycle status) -> n

    def on_change(self, tracked: Tracked, event: DeliberationEvent) -> None:
        """Every event of every deliberation: stored, and logged when it is a status or a failure."""
        self.store.add_event(event)
        if event.type == "status":
            self.store.put_state(tracked.state)
            state = tracked.state
            log.info("deliberation %s role=%s task=%s: %s%s", state.deliberation_id, state.role, state.task_id,
                     state.status, f" ({state.error})" if state.error else "")
            self.metrics.load(*self.load())
        elif isinstance(f := event.data, AgentFailure):
            log.warning("deliberation %s agent=%s stage=%s round=%s failed: %s: %s", event.deliberation_id,
                        f.agent_id, f.stage, f.round, f.error_type, f.message[:300])

    def load(self) -> tuple[int, int]:
        """(in flight: queued or running, queued)."""
        states = [t.state.status for t in self.tracked.values()]
        return sum(s not in FINISHED for s in states), states.count("queued")

    async def submit(self, request: DeliberationRequest, deliberation_id: str | None = None) -> DeliberationState:
        """Start a deliberation in the background; returns its (queued) state at once. Refused before
        anything is stored: an unknown role (`NotFoundError`), a quorum larger than the council that
        would run or a prompt that can outgrow the engine's context window (`InvalidRequestError`), an
        id in use (`ConflictError`), a full queue (`OverloadedError`)."""
        count = await self.admission.token_counter()
        council = self.councils.resolve(request)
        self.admission.check_request(request, council, count)
        did = deliberation_id or new_deliberation_id()
        if did in self.tracked:
            raise ConflictError(f"deliberation {did!r} exists already")
        self.admission.check_queue(self.load()[1])
        tracked = Tracked(did, request, council.role, self.on_change)
        self.store.put_run(did, request, council, len(tracked.events))
        self.metrics.started.inc(tags={"role": council.role})
        self.tracked[did] = tracked
        self._evict()
        self.start(tracked, request, council)
        return tracked.state

    def start(self, tracked: Tracked, request: DeliberationRequest, council: CouncilSpec,
              checkpoint: Checkpoint | None = None) -> None:
        """Run `tracked` (from `checkpoint`, when resuming) in the background."""
        tracked.task = asyncio.get_running_loop().create_task(self._run(tracked, request, council, checkpoint))

    def adopt(self, tracked: Tracked) -> None:
        """A deliberation restored from the store (recovery.py): tracked, and counted when finished."""
        self.tracked[tracked.state.deliberation_id] = tracked
        self._count(tracked)

    async def _run(self, tracked: Tracked, request: DeliberationRequest, council: CouncilSpec,
                   checkpoint: Checkpoint | None) -> None:
        """Run (or, from `checkpoint`, resume) one deliberation to its end; every outcome is recorded."""
        did = tracked.state.deliberation_id

        def saved(cp: Checkpoint) -> None:  # after the stage's events: a resume drops only later ones
            self.store.put_checkpoint(did, len(tracked.events), cp)

        try:
            async with self.admission.slots:
                tracked.set_status("running")
                architect = self.councils.architect_for(council) if request.config.architect else None
                members = council.agents + ([architect] if architect else [])
                pool, replaced = self.agents.pool(members)
                judge = (Judge(self.engine, self.config.engine.model_id, request.config.judge_max_tokens,
                               layout=request.config.prompt_layout)
                         if request.config.judge else None)
                run = Deliberation(request, council, pool, RubricScorer(judge, request.config.sandbox), did,
                                   on_event=tracked.emit, architect_id=architect.agent_id if architect else None,
                                   checkpoint=checkpoint, on_checkpoint=saved)
                run.record.engine = self.config.engine.info()
                if replaced:
                    run.record.notes.append(f"the actors of {replaced} had died since their last call: "
                                            "they run in new actors")
                try:
                    record = await run.run()
                except asyncio.CancelledError:
                    self._finish(tracked, "cancelled", run.record, "cancelled")
                    raise
        except asyncio.CancelledError:
            if not tracked.finished:  # cancelled while still queued
                self._finish(tracked, "cancelled", None, "cancelled")
            return
        except DeliberationFailedError as e:
            self._finish(tracked, "failed", e.record, str(e))
            return
        except Exception as e:  # a bug, not an agent failure: surfaced in the state, never swallowed
            self._finish(tracked, "failed", None, f"{type(e).__name__}: {e}")
            return
        self._finish(tracked, "done", record, None)

    def _finish(self, tracked: Tracked, status: Lifecycle, record: DeliberationRecord | None,
                error: str | None) -> None:
        tracked.set_status(status, record, error)
        self.store.delete_run(tracked.state.deliberation_id)  # after the final state: nothing to resume
        outcome = self._count(tracked)
        if outcome is not None:  # always: the status just set is a final one
            self.metrics.ended(tracked.state.role, outcome, tracked.state.record)

    def _count(self, tracked: Tracked) -> str | None:
        """Count a finished deliberation by role and outcome (the record's status when done, else the
        lifecycle's); returns the outcome (None: not finished, not counted)."""
        state = tracked.state
        if not tracked.finished:
            return None
        outcome = state.record.status if state.record and state.status == "done" else state.status
        self.counts[(state.role, outcome)] += 1
        return outcome

    def _evict(self) -> None:
        finished = [d for d, t in self.tracked.items() if t.finished]
        for did in finished[: max(0, len(self.tracked) - self.config.max_tracked)]:
            del self.tracked[did]
            self.store.delete_deliberation(did)

    def get(self, deliberation_id: str) -> Tracked:
        """The tracked deliberation; `NotFoundError` when there is none (or it was evicted)."""
        tracked = self.tracked.get(deliberation_id)
        if tracked is None:
            raise NotFoundError(f"no deliberation {deliberation_id!r}")
        return tracked

    async def run(self, request: DeliberationRequest, deliberation_id: str | None = None) -> DeliberationRecord:
        """Submit and wait: the record, or `DeliberationFailedError` (with the partial record)."""
        state = await self.submit(request, deliberation_id)
        tracked = self.get(state.deliberation_id)
        task = tracked.task
        assert task is not None  # submit started it
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()  # our caller went away: so does the deliberation
            raise
        state = tracked.state
        if state.status == "done" and state.record is not None:
            return state.record
        if state.status == "cancelled":
            raise asyncio.CancelledError(f"deliberation {state.deliberation_id} was cancelled")
        raise DeliberationFailedError(state.error or "failed", state.record)

    async def wait(self, deliberation_id: str, timeout_s: float) -> DeliberationState:
        """The state once the deliberation ends, or as it is after timeout_s."""
        tracked = self.get(deliberation_id)
        if tracked.task is not None:  # None: restored finished, nothing to wait for
            try:
                await asyncio.wait_for(asyncio.shield(tracked.task), timeout_s)
            except TimeoutError:
                pass
        return tracked.state

    def list(self, role: str | None = None, status: Lifecycle | None = None, offset: int = 0,
             limit: int = 50) -> tuple[list[DeliberationState], int]:
        """Newest first, filtered; returns (page, total matching)."""
        states = [t.state for t in reversed(self.tracked.values())
                  if (role is None or t.state.role == role.upper()) and (status is None or t.state.status == status)]
        return states[offset: offset + limit], len(states)

    async def cancel(self, deliberation_id: str) -> DeliberationState:
        """Cancel a queued or running deliberation; its state once it stopped (or after `call_s`)."""
        tracked = self.get(deliberation_id)
        if tracked.finished or tracked.task is None:
            raise ConflictError(f"deliberation {deliberation_id!r} already ended: {tracked.state.status}")
        tracked.task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(tracked.task), self.config.deliberation.timeouts.call_s)
        except (asyncio.CancelledError, TimeoutError):
            pass
        return tracked.state
