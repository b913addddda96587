"""Real agent and coordinator actors on the shared Ray session, with a fixed-latency fake engine."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from fleet import (
    DeliberationFailedError,
    EngineSpec,
    FakeEngineConfig,
    Fleet,
    FleetConfig,
    InvalidRequestError,
    NotFoundError,
    Task,
)

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

LATENCY_S = 0.5


@pytest.fixture(scope="module")
async def fleet(ray_session):
    config = FleetConfig(
        engine=EngineSpec(kind="inproc_fake", fake=FakeEngineConfig(latency_s=LATENCY_S, fail_agents=["agent-qa-002"])),
        coordinator_name="fleet-tests-fake",
    )
    fleet = await Fleet.start(config)
    yield fleet
    await fleet.shutdown()


def wall_s(record, phase, round_=0):
    return next(t.wall_ms for t in record.timings if t.phase == phase and t.round == round_) / 1000


async def test_each_stage_runs_its_calls_concurrently(fleet):
    record = await fleet.deliberate("Add rate limiting to the login endpoint", role="DEV", num_agents=4, rounds=1)
    # drafts, critiques, revisions, the judge on every candidate (4 drafts + 4 revisions), the architect
    assert record.status == "completed" and record.tokens.calls == 4 + 12 + 4 + 8 + 1
    # One after another these stages would take 4 and 12 call latencies.
    assert wall_s(record, "generate") < 2 * LATENCY_S
    assert wall_s(record, "critique", 1) < 2 * LATENCY_S
    assert wall_s(record, "revise", 1) < 2 * LATENCY_S


async def test_deliberation_from_inside_a_running_event_loop_handler(fleet):
    """Regression for the seed system's fatal bug: asyncio.run() inside a running loop (gRPC/NATS
    handler). Here a FastAPI handler, called through its ASGI app, awaits a whole deliberation."""
    app = FastAPI()

    @app.post("/deliberate")
    async def handler(body: dict):
        record = await fleet.deliberate(body["task"], role="DEV", num_agents=2, rounds=1)
        return {"winner": record.winner_id, "status": record.status}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.post("/deliberate", json={"task": "Add a health check endpoint"}, timeout=120)
    assert response.status_code == 200
    assert response.json()["winner"] in {"agent-dev-001", "agent-dev-002"}
    assert asyncio.get_running_loop().is_running()


async def test_three_deliberations_at_once_all_succeed(fleet):
    task = Task(description="Add audit logging", story_id="story-42")
    records = await asyncio.gather(*(fleet.deliberate(task, role=r, num_agents=3, rounds=1)
                                     for r in ("DEV", "ARCHITECT", "DEVOPS")))
    assert [r.status for r in records] == ["completed"] * 3
    assert len({r.deliberation_id for r in records}) == 3


async def test_failed_agent_error_type_survives_the_actor_boundary(fleet):
    record = await fleet.deliberate("Test the login endpoint", role="QA", num_agents=3, rounds=1)
    assert record.status == "degraded"
    [failure] = record.failures
    assert (failure.agent_id, failure.error_type) == ("agent-qa-002", "EngineError")
    assert "agent-qa-002" not in {s.author_id for s in record.scores}


async def test_quorum_loss_raises_the_typed_error_with_the_partial_record(fleet):
    from fleet import DeliberationConfig

    with pytest.raises(DeliberationFailedError) as info:
        await fleet.deliberate("Test the login endpoint", role="QA", num_agents=2, config=DeliberationConfig(quorum=2))
    # Quorum is lost the moment agent-qa-002 fails, which may be before or after agent-qa-001's draft
    # lands: the record names the failure, and whatever it holds came from the surviving agent.
    record = info.value.record
    assert record.status == "failed"
    assert [(f.agent_id, f.error_type) for f in record.failures] == [("agent-qa-002", "EngineError")]
    assert {p.author_id for p in record.proposals} <= {"agent-qa-001"}


async def test_unknown_role_and_bad_input_are_typed_errors(fleet):
    with pytest.raises(NotFoundError, match="SECURITY"):
        await fleet.deliberate("x", role="SECURITY")
    with pytest.raises(InvalidRequestError, match="rounds"):
        await fleet.deliberate("x", rounds=-1)


async def test_cancelling_the_caller_cancels_the_deliberation(fleet):
    task = asyncio.create_task(fleet.deliberate("Add caching", role="DATA", num_agents=3, rounds=2))
    await asyncio.sleep(LATENCY_S * 2)  # well inside the deliberation
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        status = await fleet.status()
        if status["in_flight"] == 0:
            break
        await asyncio.sleep(0.1)
    assert status["in_flight"] == 0
    assert status["per_role"]["DATA"] == {"cancelled": 1}


async def test_coordinator_reports_where_its_agents_run(fleet):
    await fleet.deliberate("x", role="DEV", num_agents=3, rounds=0)
    nodes = await fleet.coordinator.agent_nodes.remote()
    assert {"agent-dev-001", "agent-dev-002", "agent-dev-003"} <= set(nodes)
    assert len(set(nodes.values())) == 1  # one node here; tests/test_placement.py covers several


async def test_overrides_ride_on_calls_so_concurrent_deliberations_share_the_actors(fleet):
    from fleet import SamplingOverride

    def actor_ids(coordinator):
        return {agent: handle._actor_id.hex() for agent, (_, handle) in coordinator.agents.actors.items()}

    await fleet.deliberate("Warm the DEV council", role="DEV", rounds=0, judge=False)
    before = await fleet.coordinator.__ray_call__.remote(actor_ids)
    records = await asyncio.gather(
        fleet.deliberate("Add a cache", role="DEV", rounds=1, sampling=SamplingOverride(max_tokens=40)),
        fleet.deliberate("Add a cache", role="DEV", rounds=1, sampling=SamplingOverride(temperature=0.0)),
        fleet.deliberate("Add a cache", role="DEV", rounds=1))
    assert [r.status for r in records] == ["completed"] * 3
    after = await fleet.coordinator.__ray_call__.remote(actor_ids)
    assert {a: after[a] for a in before} == before  # no actor was replaced by an override
    assert records[0].sampling.max_tokens == 40 and records[1].sampling.temperature == 0.0


async def test_a_dead_agent_actor_is_replaced_before_its_next_call_and_the_record_says_so(fleet):
    import ray

    await fleet.deliberate("Warm the DATA council", role="DATA", rounds=0, judge=False)
    handle = await fleet.coordinator.__ray_call__.remote(lambda c: c.agents.actors["agent-data-002"][1])
    ray.kill(handle)
    first = await fleet.deliberate("Add a migration", role="DATA", rounds=0, judge=False)
    # Killed between deliberations: the next one finds it dead, degrades, and the coordinator forgets it.
    assert first.status == "degraded" and first.failures[0].agent_id == "agent-data-002"
    second = await fleet.deliberate("Add a migration", role="DATA", rounds=0, judge=False)
    assert second.status == "completed" and second.failures == []
    assert any("agent-data-002" in n and "new actors" in n for n in second.notes)
    assert (await fleet.status())["agents_replaced"]["agent-data-002"] == 1


async def test_the_door_refuses_a_quorum_above_the_council_and_a_full_queue(ray_session):
    from fleet import DeliberationConfig
    from fleet.errors import OverloadedError

    config = FleetConfig(engine=EngineSpec(kind="inproc_fake", fake=FakeEngineConfig(latency_s=1.0)),
                         coordinator_name="fleet-tests-queue", max_concurrent=1, max_queued=2)
    fleet = await Fleet.start(config)
    try:
        with pytest.raises(InvalidRequestError, match="quorum: 5 is larger than the council that would run"):
            await fleet.deliberate("x", role="QA", config=DeliberationConfig(quorum=5))
        from fleet.config.deliberation import DeliberationRequest

        request = DeliberationRequest(task=Task(description="Add a cache"), role="DEV",
                                      config=DeliberationConfig(rounds=0, judge=False))
        accepted = [await fleet.submit(request) for _ in range(3)]  # one runs, two wait
        with pytest.raises(OverloadedError, match="max_queued=2") as err:
            await fleet.submit(request)
        assert err.value.http_status == 503 and err.value.retry_after_s > 0
        finished = [await fleet.wait(s.deliberation_id, 120) for s in accepted]
        assert [s.status for s in finished] == ["done"] * 3  # nothing accepted was dropped
        assert (await fleet.list_deliberations())[1] == 3  # the refused ones left nothing behind
    finally:
        await fleet.shutdown()


async def test_warm_councils_start_their_agents_before_any_deliberation(ray_session):
    """warm_roles' agents (and their architect) start with the coordinator; a council created later
    starts its agents at once: a deliberation's setup only finds them."""
    from fleet.config.council import CouncilSpec

    config = FleetConfig(engine=EngineSpec(kind="inproc_fake"), coordinator_name="fleet-tests-warm",
                         warm_roles=["QA"])
    fleet = await Fleet.start(config)
    try:
        async def agents(expected: set[str]) -> set[str]:
            for _ in range(120):
                nodes = set(await fleet.coordinator.agent_nodes.remote())
                if expected <= nodes:
                    return nodes
                await asyncio.sleep(1)
            return nodes

        qa = {"agent-qa-001", "agent-qa-002", "agent-qa-003", "agent-architect-001"}  # + the ARCHITECT council's first
        assert await agents(qa) == qa  # QA only: the other councils stay cold
        await fleet.create_council(CouncilSpec.default("SECURITY", 2, persona="You are a security engineer."))
        security = {"agent-security-001", "agent-security-002"}
        assert await agents(qa | security) == qa | security
        record = await fleet.deliberate("Add a cache", role="QA", rounds=0, judge=False)
        assert record.status == "completed"
    finally:
        await fleet.shutdown()


async def test_a_killed_coordinator_restarts_resumes_its_deliberation_and_503s_meanwhile(ray_session, tmp_path):
    import ray

    from fleet.errors import CoordinatorUnavailableError

    config = FleetConfig(engine=EngineSpec(kind="inproc_fake", fake=FakeEngineConfig(latency_s=0.5)),
                         coordinator_name="fleet-tests-restart", state_path=str(tmp_path / "state.sqlite"))
    fleet = await Fleet.start(config, detached=True)
    try:
        done = await fleet.deliberate("Add a cache", role="DEV", rounds=0, judge=False)

        def pid(_):
            import os

            return os.getpid()

        before = await fleet.coordinator.__ray_call__.remote(pid)
        running = asyncio.create_task(fleet.deliberate("Add a queue", role="DEV", rounds=3))
        from fleet.coordinator.store import SqlStore

        did, drafts, stored = None, [], None
        for _ in range(400):  # until its drafts are in and stored (0.5 s a call, 3 rounds: ~4 s in all)
            states, _ = await fleet.list_deliberations(status="running")
            did = states[0].deliberation_id if states else None
            events = (await fleet.coordinator.events.remote(did, 0, 0))[0] if did else []
            drafts = [e.data for e in events if e.type == "proposal"]
            if did:
                store = SqlStore(str(tmp_path / "state.sqlite"))
                stored = store.load().runs.get(did)
                store.close()
            if len(drafts) == 3 and stored is not None and stored.checkpoint is not None:
                break
            await asyncio.sleep(0.05)
        assert len(drafts) == 3 and stored.checkpoint is not None
        ray.kill(fleet.coordinator, no_restart=False)  # its process dies mid-deliberation; Ray starts it again
        with pytest.raises(CoordinatorUnavailableError) as err:  # the caller hears 503, not a 500 or a hang
            await running
        assert err.value.http_status == 503 and err.value.retry_after_s > 0
        after = before
        for _ in range(120):  # calls made while it restarts wait for the new process
            try:
                after = await fleet.coordinator.__ray_call__.remote(pid)
                if after != before:
                    break
            except ray.exceptions.RayActorError:
                await asyncio.sleep(0.5)
        assert after != before
        assert (await fleet.get(done.deliberation_id)).status == "done"  # reloaded from the state file
        assert (await fleet.status())["resumed"] == [did]  # the new coordinator went on with it ...
        resumed = await fleet.wait(did, 120)
        assert resumed.status == "done" and resumed.record.status == "completed"
        record = resumed.record  # ... from its stored drafts, which were not made again
        # (the record lists them in council order, the events as they came)
        assert [p for p in record.proposals if p.round == 0] == sorted(drafts, key=lambda p: p.author_id)
        assert [t.phase for t in record.timings].count("generate") == 1
        assert any(n.startswith("resumed after a coordinator restart") for n in record.notes)
        again = await fleet.deliberate("Add a cache", role="DEV", rounds=0, judge=False)
        assert again.status == "completed"
        ray.kill(fleet.coordinator, no_restart=True)  # gone for good: a clear 503, not a hang or a 500
        with pytest.raises(CoordinatorUnavailableError):
            for _ in range(100):  # ray.kill is asynchronous: a call may still reach it before the kill lands
                await fleet.status()
                await asyncio.sleep(0.1)
        with pytest.raises(CoordinatorUnavailableError, match="not restarted"):
            await fleet.status()
    finally:
        fleet.owner = False


async def test_32_concurrent_deliberations_with_cancels_each_end_done_or_cancelled(ray_session):
    """32 accepted at once (8 run, 24 wait) and 8 of them cancelled: some while queued, some mid-stage,
    some perhaps already done (then the cancel is a 409). Every accepted one ends, counts exact."""
    from fleet import DeliberationConfig
    from fleet.config.deliberation import DeliberationRequest
    from fleet.errors import ConflictError

    config = FleetConfig(engine=EngineSpec(kind="inproc_fake", fake=FakeEngineConfig(latency_s=0.2)),
                         coordinator_name="fleet-tests-load", max_concurrent=8, max_queued=32)
    fleet = await Fleet.start(config)
    try:
        request = DeliberationRequest(task=Task(description="Add a cache"), role="DEVOPS",
                                      config=DeliberationConfig(rounds=1, judge=False))
        accepted = await asyncio.gather(*(fleet.submit(request) for _ in range(32)))
        ids = [s.deliberation_id for s in accepted]
        assert len(set(ids)) == 32
        await asyncio.sleep(0.5)  # the first 8 are mid-stage, the rest queued
        targets = ids[::4]  # 0, 4, ..., 28: running ones and queued ones
        cancelled, too_late = set(), set()
        for did in targets:
            try:
                state = await fleet.cancel(did)
                assert state.status == "cancelled"
                cancelled.add(did)
            except ConflictError:  # it had finished already
                too_late.add(did)
        finals = await asyncio.gather(*(fleet.wait(did, 240) for did in ids))
        by_status = {did: s.status for did, s in zip(ids, finals, strict=True)}
        assert {d for d, s in by_status.items() if s == "cancelled"} == cancelled
        assert {d for d, s in by_status.items() if s == "done"} == set(ids) - cancelled
        assert len(cancelled) + len(too_late) == 8 and len(cancelled) >= 4  # most were cancelled in flight
        assert all(s.record.status == "completed" for s in finals if s.status == "done")
        status = await fleet.status()
        assert status["in_flight"] == 0 and status["queued"] == 0
        assert status["per_role"]["DEVOPS"] == {"completed": 32 - len(cancelled), "cancelled": len(cancelled)}
    finally:
        await fleet.shutdown()


async def test_a_killed_engine_replica_is_replaced_and_its_calls_are_resent_as_recorded(serve_http):
    """The engine is a Serve deployment (the fake, 1 s per call); its replica's process is killed while
    every agent's draft is in flight. Serve starts a new replica; each lost call is re-sent once one is
    up, and the record counts the re-sends. Nothing hangs, nothing stands in for a lost answer."""
    import ray
    from ray import serve

    app = "fleet-engine-kill"
    config = FleetConfig(engine=EngineSpec(kind="fake", app_name=app, fake=FakeEngineConfig(latency_s=1.0)),
                         coordinator_name="fleet-tests-replica-kill")

    def replicas() -> list[str]:
        return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                      if a["namespace"] == "serve" and app in a["name"] and "REPLICA" in a["name"].upper())

    fleet = await Fleet.start(config)  # deploys the engine app into the suite's Serve
    try:
        assert (await fleet.deliberate("Warm up", role="QA", rounds=0, judge=False)).status == "completed"
        [before] = await asyncio.to_thread(replicas)
        running = asyncio.create_task(fleet.deliberate("Add a queue", role="QA", rounds=1, judge=False))
        await asyncio.sleep(0.5)  # the three drafts are in flight (1 s each)
        ray.kill(await asyncio.to_thread(ray.get_actor, before, "serve"), no_restart=True)
        record = await asyncio.wait_for(running, 240)
        assert record.status == "completed", record.failures
        drafts = [u for u in record.usage if u.stage == "generate"]
        assert len(drafts) == 3 and all(u.retries >= 1 for u in drafts)  # each lost draft was re-sent ...
        assert all(u.retries == 0 for u in record.usage if u.stage != "generate")  # ... and nothing else
        [after] = await asyncio.to_thread(replicas)
        assert after != before  # a new replica answered
        again = await fleet.deliberate("Add a queue", role="QA", rounds=0, judge=False)
        assert again.status == "completed" and all(u.retries == 0 for u in again.usage)
    finally:
        await fleet.shutdown()
        await asyncio.to_thread(serve.delete, app)


async def test_an_agent_actor_killed_mid_stage_is_a_failed_agent_and_the_rest_finish(fleet):
    """Killed while its draft is in flight (0.5 s per call): that agent fails with the actor's error,
    the other two finish the deliberation (quorum 2 of 3), and nothing stands in for the lost draft."""
    import ray

    await fleet.deliberate("Warm the ARCHITECT council", role="ARCHITECT", rounds=0, judge=False)
    handle = await fleet.coordinator.__ray_call__.remote(lambda c: c.agents.actors["agent-architect-003"][1])
    running = asyncio.create_task(fleet.deliberate("Split the monolith", role="ARCHITECT", rounds=1, judge=False))
    await asyncio.sleep(0.2)  # the drafts (0.5 s each) are in flight, or setup is still going
    ray.kill(handle)
    record = await running
    assert record.status == "degraded"
    [failure] = record.failures
    assert failure.agent_id == "agent-architect-003" and failure.stage in ("setup", "generate")
    assert "Actor" in failure.error_type  # the actor's death, by its own name
    assert {p.author_id for p in record.proposals} == {"agent-architect-001", "agent-architect-002"}
    assert record.winner_id in {"agent-architect-001", "agent-architect-002"}


_BESIDE = """
import asyncio, ray
from fleet import Fleet, FleetConfig
from fleet.bootstrap import init_ray
from fleet.errors import EngineNotReadyError

async def main():
    config = FleetConfig(coordinator_name="nobody-here")
    try:
        await Fleet.connect(config)
    except EngineNotReadyError as e:
        print("connect:", e)
    print("connected after:", ray.is_initialized())
    print("init:", init_ray(config))
    print("fleet_engine:", ray.cluster_resources().get("fleet_engine"))
    print("gcs:", ray.get_runtime_context().gcs_address)
    ray.shutdown()

asyncio.run(main())
"""


def test_a_driver_beside_someone_elses_ray_starts_its_own(ray_session):
    """The README demo on a machine where a Ray already runs (here: the suite's), no address given:
    connect() looks for a fleet there, finds none and lets go; start()'s Ray is then a private one
    with the engine's placement resource. (It used to join that Ray with resources and die on
    "When connecting to an existing cluster, resources must not be provided".)"""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", _BESIDE], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    said = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    assert said["connect"] == "no fleet coordinator named 'nobody-here' is running"
    assert said["connected after"] == "False" and said["init"] == "started" and said["fleet_engine"] == "1000.0"
    assert said["gcs"] != ray_session.get_runtime_context().gcs_address  # the suite's Ray was left alone
