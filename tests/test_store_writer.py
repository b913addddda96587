"""The coordinator's write-behind (`StoreWriter`) and the store contract without a database
(`NullStore`): writes land in the order they were made, a failed one is counted and never raised into
its caller, a plan answer is awaited and its failure is a `StoreError`."""

from __future__ import annotations

import pytest

from fleet.config.council import CouncilSpec
from fleet.coordinator.state_store import NullStore, StateStore
from fleet.coordinator.writer import StoreWriter, open_store
from fleet.errors import StoreError
from fleet.schemas.api import PlanDispatch

pytestmark = pytest.mark.unit


class Recording(NullStore):
    """A `StateStore` that records what reached it; `fail` names a method that raises."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[str, object]] = []
        self.fail = fail

    def _record(self, name: str, value: object) -> None:
        if name == self.fail:
            raise RuntimeError(f"{name} refused")
        self.calls.append((name, value))

    def put_council(self, spec: CouncilSpec) -> None:
        self._record("put_council", spec.role)

    def delete_council(self, role: str) -> None:
        self._record("delete_council", role)

    def delete_run(self, deliberation_id: str) -> None:
        self._record("delete_run", deliberation_id)

    def put_plan(self, answer: PlanDispatch) -> None:
        self._record("put_plan", answer.event_id)


def _plan(event_id: str) -> PlanDispatch:
    return PlanDispatch(event_id=event_id, plan_id="p", story_id="s", total=0, started=0, failed=0, results=[])


async def test_writes_land_in_order_and_a_plan_waits_for_those_before_it():
    store = Recording()
    writer = StoreWriter(store)
    for role in ("DEV", "QA", "DATA"):
        writer.put_council(CouncilSpec.default(role, 2))
    writer.delete_council("QA")
    writer.delete_run("d-1")
    await writer.put_plan(_plan("evt-1"))  # awaited: everything queued before it is in
    assert store.calls == [("put_council", "DEV"), ("put_council", "QA"), ("put_council", "DATA"),
                           ("delete_council", "QA"), ("delete_run", "d-1"), ("put_plan", "evt-1")]
    assert writer.errors == []


async def test_a_failed_write_is_counted_not_raised_and_later_writes_go_on():
    writer = StoreWriter(Recording(fail="delete_council"))
    writer.delete_council("QA")  # does not raise here
    writer.delete_run("d-1")
    await writer.flush()
    assert writer.errors == ["delete_council: RuntimeError('delete_council refused')"]
    assert writer.store.calls == [("delete_run", "d-1")]


async def test_a_plan_answer_that_cannot_be_stored_is_a_store_error():
    writer = StoreWriter(Recording(fail="put_plan"))
    with pytest.raises(StoreError, match="evt-1"):
        await writer.put_plan(_plan("evt-1"))


def test_outside_an_event_loop_a_write_runs_at_once_and_raises():
    store = Recording(fail="put_council")
    with pytest.raises(RuntimeError, match="refused"):
        StoreWriter(store).put_council(CouncilSpec.default("DEV", 2))
    StoreWriter(store).delete_run("d-1")
    assert store.calls == [("delete_run", "d-1")]


def test_no_location_is_a_null_store_that_keeps_nothing():
    store: StateStore = open_store(None)
    assert isinstance(store, NullStore) and store.location is None and store.dialect is None
    store.put_council(CouncilSpec.default("DEV", 2))
    snapshot = store.load()
    assert snapshot.councils == [] and snapshot.deliberations == [] and snapshot.runs == {}
    assert store.get_state("d-1") is None
