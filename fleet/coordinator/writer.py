"""Write-behind to the `StateStore`: the coordinator's writes, in order, on one IO thread.

Each method mirrors the store's method of the same name and queues the bound call (`store.put_run`,
...) on a single-thread executor, so writes land in the order they were made and the event loop never
waits on the database. A write that fails is counted in `errors` (status() shows them), never dropped
silently and never raised into the deliberation that made it. Outside an event loop (the coordinator's
constructor) a write runs at once and raises. `put_plan` alone is awaited: its answer must be stored
before it is returned.

What this file leaves out: what is stored and how (state_store.py, store.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec

from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationRequest
from fleet.coordinator.state_store import Checkpoint, NullStore, StateStore
from fleet.errors import StoreError
from fleet.schemas.api import DeliberationEvent, DeliberationState, PlanDispatch

log = logging.getLogger(__name__)
P = ParamSpec("P")


class StoreWriter:
    """`store`'s writes, queued in order. `store` may be swapped (a test's crash: a `NullStore`);
    writes already queued still reach the store they were made for."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-store")
        self.errors: list[str] = []  # "method: error", oldest first

    def _submit(self, write: Callable[P, None], *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the constructor: write now
            write(*args, **kwargs)
            return
        name = write.__name__
        future = loop.run_in_executor(self.io, functools.partial(write, *args, **kwargs))

        def check(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is not None:
                log.warning("state store: %s failed: %r", name, f.exception())
                self.errors.append(f"{name}: {f.exception()!r}")

        future.add_done_callback(check)

    async def flush(self) -> None:
        """Wait until every write queued so far has run."""
        await asyncio.get_running_loop().run_in_executor(self.io, _nothing)

    def put_council(self, spec: CouncilSpec) -> None:
        self._submit(self.store.put_council, spec)

    def delete_council(self, role: str) -> None:
        self._submit(self.store.delete_council, role)

    def put_state(self, state: DeliberationState) -> None:
        self._submit(self.store.put_state, state)

    def add_event(self, event: DeliberationEvent) -> None:
        self._submit(self.store.add_event, event)

    def delete_deliberation(self, deliberation_id: str) -> None:
        self._submit(self.store.delete_deliberation, deliberation_id)

    def truncate_events(self, deliberation_id: str, keep: int) -> None:
        self._submit(self.store.truncate_events, deliberation_id, keep)

    def put_run(self, deliberation_id: str, request: DeliberationRequest, council: CouncilSpec, events: int) -> None:
        self._submit(self.store.put_run, deliberation_id, request, council, events)

    def put_checkpoint(self, deliberation_id: str, events: int, checkpoint: Checkpoint) -> None:
        self._submit(self.store.put_checkpoint, deliberation_id, events, checkpoint)

    def delete_run(self, deliberation_id: str) -> None:
        self._submit(self.store.delete_run, deliberation_id)

    async def put_plan(self, answer: PlanDispatch) -> None:
        """Stored once every write queued before it is (the runs the plan started are in too);
        `StoreError` when it could not be."""
        try:
            await asyncio.get_running_loop().run_in_executor(self.io, self.store.put_plan, answer)
        except Exception as e:
            raise StoreError(f"the plan answer of event {answer.event_id!r} could not be stored: "
                             f"{type(e).__name__}: {e}") from e


def _nothing() -> None:
    pass


def open_store(location: str | None) -> StateStore:
    """The store at a configured location (`FleetConfig.state_location()`): SQL when there is one."""
    if not location:
        return NullStore()
    from fleet.coordinator.store import SqlStore  # sqlalchemy only when a store is configured

    return SqlStore(location)
