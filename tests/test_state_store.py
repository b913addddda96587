"""Coordinator state survives a restart: councils, deliberations with their records and events, plan
answers. An unfinished deliberation resumes from its last completed stage; one with nothing to resume
from comes back failed ("interrupted"), its output kept."""

from __future__ import annotations

import asyncio

import pytest

from fleet import DeliberationConfig, EngineSpec, FakeEngineConfig, FleetConfig, Task
from fleet.config.council import CouncilSpec, NewAgent
from fleet.config.deliberation import DeliberationRequest
from fleet.coordinator.coordinator import Coordinator
from fleet.coordinator.state_store import NullStore
from fleet.schemas.api import PlanApproved

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def config(location, latency_s=0.0) -> FleetConfig:
    where = {"state_url": location} if str(location).startswith("postgresql") else {"state_path": str(location)}
    return FleetConfig(engine=EngineSpec(kind="inproc_fake", fake=FakeEngineConfig(latency_s=latency_s)), **where)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    """Where the state lives: a SQLite file, or a database on the suite's real PostgreSQL."""
    return tmp_path / "fleet.sqlite" if request.param == "sqlite" else request.getfixturevalue("fresh_database")


async def settle(coordinator: Coordinator) -> None:
    """Let queued store writes finish (they run on the coordinator's IO thread, in order)."""
    await coordinator.store.flush()


async def test_a_restarted_coordinator_has_everything_back(ray_session, location):
    db = location
    first = Coordinator(config(db))
    await first.create_council(CouncilSpec.default("SECURITY", 2, persona="You are a security engineer."))
    await first.add_agent("SECURITY", NewAgent(lens="You think like an attacker."))
    record = await first.run(DeliberationRequest(task=Task(description="Harden login"), role="SECURITY",
                                                 config=DeliberationConfig(rounds=1)))
    plan = await first.plan_approved(PlanApproved(event_id="evt-1", plan_id="p", story_id="s", roles=["DEV"],
                                                  task=Task(description="x"), config=DeliberationConfig(rounds=0)))
    await first.wait(plan.results[0].deliberation_id, 60)
    events = (await first.events(record.deliberation_id, 0, 0))[0]
    await settle(first)

    second = Coordinator(config(db))
    council = await second.get_council("security")
    assert [a.agent_id for a in council.agents] == ["agent-security-001", "agent-security-002", "agent-security-003"]
    state = await second.get_deliberation(record.deliberation_id)
    assert state.status == "done" and state.record == record
    assert (await second.events(record.deliberation_id, 0, 0)) == (events, True)
    assert await second.plan_approved(PlanApproved(event_id="evt-1", plan_id="p", story_id="s", roles=["DEV"],
                                                   task=Task(description="x"))) == plan
    assert (await second.status())["per_role"]["SECURITY"] == {"completed": 1}
    store = (await second.status())["store"]
    assert store["errors"] == 0 and store["dialect"] == ("sqlite" if "sqlite" in str(db) else "postgresql")
    assert "fleet-test-pw" not in str(store)


async def crash_mid_critique(location, rounds: int = 2) -> tuple[str, list]:
    """A coordinator that dies while round 1's critiques are being written: its drafts are stored
    (and checkpointed), nothing more is written after the 'crash'. Returns the id and the events."""
    # Every fake call takes 3 s: the crash lands inside the critiques' window even on a loaded machine.
    first = Coordinator(config(location, latency_s=3.0))
    state = await first.submit(DeliberationRequest(task=Task(description="Add caching"), role="DATA",
                                                   config=DeliberationConfig(rounds=rounds)))
    did = state.deliberation_id
    tracked = first.runs.tracked[did]
    for _ in range(6000):  # until the drafts are in (up to 120 s: agent actors start first, slow under load)
        if sum(e.type == "proposal" for e in tracked.events) == 3:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"the drafts did not arrive within 120 s: {[e.type for e in tracked.events]}")
    await settle(first)  # the drafts' checkpoint is stored; the critique calls are in flight
    assert not any(e.type == "critique" for e in tracked.events)
    first.store.store = NullStore()  # the process is gone: nothing it does from here reaches the store
    events = list(tracked.events)
    tracked.task.cancel()
    return did, events


async def test_a_deliberation_interrupted_mid_critique_resumes_without_repeating_a_stage(ray_session, location):
    did, before = await crash_mid_critique(location)

    second = Coordinator(config(location))  # the restarted coordinator (a running loop: it resumes)
    assert second.resumed == [did]
    state = await second.wait(did, 120)
    assert state.status == "done" and state.record.status == "completed"
    record = state.record
    assert [t.phase for t in record.timings].count("generate") == 1  # the drafts were not made again
    assert [p for p in record.proposals if p.round == 0] == sorted(  # council order; the events as they came
        (e.data for e in before if e.type == "proposal"), key=lambda p: p.author_id)
    assert {p.round for p in record.proposals} == {0, 1, 2} and len(record.critiques) == 12
    assert any(n.startswith("resumed after a coordinator restart: the drafts kept") for n in record.notes)
    events, finished = await second.events(did, 0, 0)
    assert finished and [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[: len(before)] == before  # the past as clients saw it, then the resumed run
    assert sum(e.type == "proposal" for e in events) == 3
    assert [e.data.status for e in events if e.type == "status"] == ["queued", "running", "queued", "running",
                                                                      "done"]
    await settle(second)

    third = Coordinator(config(location))  # it ended: nothing left to resume, the record as it was
    assert third.resumed == []
    assert (await third.get_deliberation(did)).record == record
    assert (await third.events(did, 0, 0)) == (events, True)


async def test_an_interrupted_deliberation_without_a_resume_point_comes_back_failed_with_its_output(
        ray_session, tmp_path):
    db = tmp_path / "fleet.sqlite"
    did, _ = await crash_mid_critique(db)
    from fleet.coordinator.store import SqlStore

    SqlStore(str(db)).delete_run(did)  # as a fleet from before resuming left it
    second = Coordinator(config(db))
    restored = await second.get_deliberation(did)
    assert second.resumed == [] and restored.status == "failed" and "interrupted" in restored.error
    events, finished = await second.events(did, 0, 0)
    assert finished and events[-1].data.status == "failed"
    assert any(e.type == "proposal" for e in events)


async def test_rows_an_older_fleet_wrote_are_reported_not_fatal(ray_session, tmp_path):
    db = tmp_path / "fleet.sqlite"
    first = Coordinator(config(db))
    record = await first.run(DeliberationRequest(task=Task(description="Add a cache"), role="DEV",
                                                 config=DeliberationConfig(rounds=0)))
    await settle(first)
    import sqlite3

    with sqlite3.connect(db) as conn:  # a row in the shape an older version wrote
        conn.execute("INSERT INTO deliberations VALUES ('delib-old', '2026-01-01', '{\"status\": \"done\"}')")
    second = Coordinator(config(db))
    assert (await second.get_deliberation(record.deliberation_id)).status == "done"
    status = await second.status()
    assert status["store"]["errors"] == 1 and "delib-old" in status["store"]["last_error"]
    with sqlite3.connect(db) as conn:  # left in the file, untouched
        assert conn.execute("SELECT count(*) FROM deliberations WHERE id = 'delib-old'").fetchone() == (1,)
