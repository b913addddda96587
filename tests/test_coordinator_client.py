"""The driver side of the coordinator's contract, without Ray: `Fleet` over any `CoordinatorAPI`, and
`CoordinatorClient`'s error translation over a stand-in actor handle."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import ray

from fleet import DeliberationRequest, FleetConfig, NotFoundError
from fleet.config.engine import EngineSpec
from fleet.coordinator import client as client_module
from fleet.coordinator.client import CoordinatorClient
from fleet.driver import Fleet
from fleet.errors import CoordinatorUnavailableError
from fleet.schemas.api import DeliberationEvent, DeliberationState, StatusChange

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = FleetConfig(engine=EngineSpec(kind="inproc_fake"), coordinator_name="client-tests")


class Recorder:
    """A stand-in coordinator that records each call by its method (only the ones these tests make)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def run(self, request: DeliberationRequest, deliberation_id: str | None = None) -> str:
        self.calls.append(("run", (request, deliberation_id)))
        return "the record"

    async def events(self, deliberation_id: str, after: int = 0,
                     wait_s: float = 15.0) -> tuple[list[DeliberationEvent], bool]:
        """One event, then a quiet poll, then the end."""
        polls = sum(m == "events" for m, _ in self.calls)
        self.calls.append(("events", (deliberation_id, after, wait_s)))
        if polls == 0:
            return [DeliberationEvent(seq=1, deliberation_id=deliberation_id, type="status", at=NOW,
                                      data=StatusChange(status="running"))], False
        return [], polls >= 2

    async def get_deliberation(self, deliberation_id: str) -> DeliberationState:
        raise NotFoundError(f"no deliberation {deliberation_id!r}")


async def test_deliberate_builds_the_request_and_run_sends_it_to_the_coordinators_run():
    api = Recorder()
    fleet = Fleet(api, CONFIG)  # type: ignore[arg-type]  # a partial stand-in
    assert await fleet.deliberate("Add a cache", role="qa", num_agents=2, rounds=0) == "the record"
    [(method, (request, did))] = api.calls
    assert method == "run" and did is None
    assert request.task.description == "Add a cache" and request.role == "QA"
    assert request.config.rounds == 0 and request.num_agents == 2


async def test_events_stream_until_the_end_with_a_none_for_each_quiet_poll():
    api = Recorder()
    seen = [e.seq if e else None async for e in Fleet(api, CONFIG).events("d-1", wait_s=0.01)]  # type: ignore[arg-type]
    assert seen == [1, None]
    assert [args for _, args in api.calls] == [("d-1", 0, 0.01), ("d-1", 1, 0.01), ("d-1", 1, 0.01)]


async def test_errors_of_the_coordinator_pass_through_fleet_as_themselves():
    with pytest.raises(NotFoundError, match="d-9"):
        await Fleet(Recorder(), CONFIG).get("d-9")  # type: ignore[arg-type]


class Handle:
    """A stand-in actor handle: `status.remote()` and `ready.remote()` answer with `answer` (or raise it)."""

    def __init__(self, answer: Any) -> None:
        self.answer, self.status, self.ready = answer, self, self

    def remote(self) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if isinstance(answer := self.answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)
        return future


async def test_a_fleet_error_inside_a_ray_task_error_comes_back_as_itself():
    error = ray.exceptions.RayTaskError("status", "Traceback ...", NotFoundError("no council 'X'"))
    with pytest.raises(NotFoundError, match="no council"):
        await CoordinatorClient(Handle(error), CONFIG).status()


async def test_a_dead_coordinator_is_503_and_the_next_call_looks_it_up_by_name(monkeypatch):
    client = CoordinatorClient(Handle(ray.exceptions.RayActorError()), CONFIG)
    with pytest.raises(CoordinatorUnavailableError, match="its process died"):
        await client.status()

    async def restarted(config: FleetConfig) -> Handle:
        assert config.coordinator_name == "client-tests"
        return Handle({"in_flight": 0})

    monkeypatch.setattr(client_module, "find_coordinator", restarted)
    assert await client.status() == {"in_flight": 0}  # the new actor answered

    client.handle = Handle(ray.exceptions.RayActorError())
    with pytest.raises(CoordinatorUnavailableError):
        await client.status()

    async def gone(config: FleetConfig) -> None:
        return None

    monkeypatch.setattr(client_module, "find_coordinator", gone)
    with pytest.raises(CoordinatorUnavailableError, match="not restarted"):
        await client.status()


async def test_a_coordinator_whose_constructor_raised_says_what_it_raised():
    died = ray.exceptions.RayActorError(error_msg="The actor died because of an error raised in its creation "
                                        "task, StoreError: cannot open the state", actor_init_failed=True)
    with pytest.raises(CoordinatorUnavailableError, match=r"could not start: .*StoreError: cannot open"):
        await CoordinatorClient(Handle(died), CONFIG).ready()
