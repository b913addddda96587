"""fleet on NATS JetStream against a real nats-server (started here on loopback, a fresh store per
test): plan-approved events in through the coordinator's plan dispatch, results out exactly once.

The bus service runs in the test's event loop against real coordinator and agent actors (fake engine,
the shared Ray session). "Exactly once" is read from the result stream itself: every message in it,
counted per subject and deliberation. Every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime

import nats
import pytest

from fleet import EngineSpec, FakeEngineConfig, Fleet, FleetConfig
from fleet.bus.service import BusService
from fleet.config.bus import NatsConfig
from fleet.coordinator.deliberation import plan_deliberation_id

pytestmark = [pytest.mark.bus, pytest.mark.ray, pytest.mark.timeout(120)]

FAST = {"rounds": 0, "judge": False}  # a draft per agent + the architect: ~2 fake calls' latency


@pytest.fixture
def nats_server(tmp_path):
    from conftest import free_port
    from nats_server import NatsServer

    server = NatsServer(free_port(), tmp_path / "jetstream")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def fleet(ray_session, tmp_path_factory):
    config = FleetConfig(engine=EngineSpec(kind="inproc_fake", fake=FakeEngineConfig(latency_s=0.3)),
                         coordinator_name="fleet-tests-bus", max_concurrent=8,
                         state_path=str(tmp_path_factory.mktemp("bus") / "state.sqlite"))
    fleet = await Fleet.start(config)
    yield fleet
    await fleet.shutdown()


def bus_config(server, **overrides) -> NatsConfig:
    # Short ack wait and nak delay: a redelivery within the test's seconds, not the defaults' 30 / 10
    # (5 s: far above a dispatch's time here, so "acked once" never depends on the machine's speed).
    return NatsConfig(**{"servers": [server.url], "ack_wait_s": 5.0, "nak_delay_s": 0.5,
                         "public_url": "http://fleet.test", **overrides})


def plan(event_id: str, roles: list[str], config: dict | None = None, **overrides) -> dict:
    return {"version": 1, "event_id": event_id, "plan_id": f"plan-{event_id}", "story_id": f"story-{event_id}",
            "roles": roles, "task": {"description": "Add password reset"}, "config": config or FAST,
            "approved_at": datetime.now(UTC).isoformat(), **overrides}


async def poll(check, deadline_s: float = 60.0, every_s: float = 0.1):
    """check()'s first truthy answer (sync or async), or the last answer after the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        answer = check()
        if asyncio.iscoroutine(answer):
            answer = await answer
        if answer or time.monotonic() > end:
            return answer
        await asyncio.sleep(every_s)


class Client:
    """The planning side: publishes events and reads everything fleet stored in its result stream."""

    def __init__(self, config: NatsConfig) -> None:
        self.config = config

    async def __aenter__(self) -> Client:
        token = self.config.token.get_secret_value() if self.config.token else None
        self.nc = await nats.connect(self.config.servers, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                     token=token)
        self.js = self.nc.jetstream()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.nc.close()

    async def publish(self, body: dict | bytes) -> int:
        """The stream sequence the event got (the stream exists once the service has connected)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        ack = await poll(lambda: self._try_publish(data), 20)
        return ack.seq

    async def _try_publish(self, data: bytes):
        try:
            return await self.js.publish(self.config.plan_subject, data, timeout=2)
        except Exception:  # the stream is not there yet, or the server restarts
            return None

    async def results(self) -> list[tuple[str, dict]]:
        """(subject, body) of every message in the result stream, in order."""
        try:
            info = await self.js.stream_info(self.config.result_stream)
        except Exception:
            return []
        out = []
        if not info.state.messages:
            return out
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await self.js.get_msg(self.config.result_stream, seq)
            out.append((msg.subject, json.loads(msg.data)))
        return out

    async def consumer(self) -> dict:
        info = await self.js.consumer_info(self.config.plan_stream, self.config.durable)
        return {"pending": info.num_pending, "ack_pending": info.num_ack_pending,
                "redelivered": info.num_redelivered}


def per_deliberation(results, kind: str) -> Counter:
    return Counter(body.get("deliberation_id") for subject, body in results if subject.endswith(kind))


async def start(config: NatsConfig, fleet, ready=None) -> BusService:
    async def get_fleet():
        return fleet

    service = BusService(config, get_fleet, ready)
    service.start()
    assert await poll(lambda: service.bus is not None and service.bus.connected, 20)
    return service


async def test_a_plan_with_two_roles_gives_two_completed_deliberations_and_one_ack(fleet, nats_server):
    config = bus_config(nats_server)
    service = await start(config, fleet)
    try:
        async with Client(config) as client:
            before = (await fleet.list_deliberations())[1]
            await client.publish(plan("evt-two", ["DEV", "QA"]))
            done = await poll(lambda: _completed(client, 2))
            ids = {plan_deliberation_id("evt-two", r) for r in ("DEV", "QA")}
            assert {b["deliberation_id"] for b in done} == ids
            for body in done:
                assert body["status"] == "completed" and body["winner_id"] in body["scores"]
                assert body["tokens"]["calls"] > 0 and body["wall_ms"] > 0
                assert body["url"] == f"http://fleet.test/v1/deliberations/{body['deliberation_id']}"
                assert (body["event_id"], body["story_id"]) == ("evt-two", "story-evt-two")
            results = await client.results()
            assert per_deliberation(results, ".deliberation.started") == dict.fromkeys(ids, 1)
            assert per_deliberation(results, ".deliberation.completed") == dict.fromkeys(ids, 1)
            assert await poll(lambda: _settled(client)) == {"pending": 0, "ack_pending": 0, "redelivered": 0}
            assert service.counts()["acked"] == 1 and service.counts()["naked"] == 0
            assert (await fleet.list_deliberations())[1] == before + 2
            # One code path: the HTTP route's call with the same event is answered from the same dispatch.
            from fleet.bus.envelope import parse_plan

            again = await fleet.plan_approved(parse_plan(json.dumps(plan("evt-two", ["DEV", "QA"])).encode()).plan())
            assert {r.deliberation_id for r in again.results} == ids
            assert (await fleet.list_deliberations())[1] == before + 2
            state = await service.state()
            assert state["connected"] and state["pending"] == 0 and state["acked"] == 1
    finally:
        await service.stop()


async def _completed(client: Client, n: int) -> list[dict] | None:
    done = [b for s, b in await client.results() if s.endswith(".deliberation.completed")]
    return done if len(done) >= n else None


async def _settled(client: Client) -> dict | None:
    counts = await client.consumer()
    return counts if counts["pending"] == 0 and counts["ack_pending"] == 0 else None


class DiesAfterDispatch:
    """The fleet as the consumer sees it, except that the consumer 'dies' right after the dispatch
    returns and before it could ack: the call never returns."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet, self.dispatched = fleet, asyncio.Event()

    async def plan_approved(self, event):
        await self.fleet.plan_approved(event)
        self.dispatched.set()
        await asyncio.Event().wait()

    async def wait(self, deliberation_id, timeout_s):
        return await self.fleet.wait(deliberation_id, timeout_s)


async def test_a_consumer_killed_before_its_ack_gets_the_event_again_and_starts_nothing_twice(fleet, nats_server):
    config = bus_config(nats_server, ack_wait_s=2.0)  # the redelivery comes 2 s after the delivery
    dying = DiesAfterDispatch(fleet)
    first = await start(config, dying)
    async with Client(config) as client:
        before = (await fleet.list_deliberations())[1]
        await client.publish(plan("evt-crash", ["DEV"]))
        await asyncio.wait_for(dying.dispatched.wait(), 30)
        await first.stop()  # gone between the stored dispatch and the ack
        assert first.counts()["acked"] == 0
        assert (await client.consumer())["ack_pending"] == 1
        second = await start(config, fleet)
        try:
            did = plan_deliberation_id("evt-crash", "DEV")
            assert await poll(lambda: _completed(client, 1))
            assert await poll(lambda: _settled(client))
            assert second.counts()["redelivered"] >= 1 and second.counts()["acked"] == 1
            assert (await fleet.list_deliberations())[1] == before + 1  # one deliberation, not two
            results = await client.results()
            assert per_deliberation(results, ".deliberation.completed") == {did: 1}
            assert per_deliberation(results, ".dispatch.accepted") == {did: 1}
        finally:
            await second.stop()


async def test_poison_messages_are_rejected_acked_and_the_next_good_one_is_served(fleet, nats_server):
    config = bus_config(nats_server)
    service = await start(config, fleet)
    try:
        async with Client(config) as client:
            bad = {
                await client.publish(b"{not json"): "not JSON",
                await client.publish({"hello": "world"}): "invalid event: event_id: Field required",
                await client.publish(plan("evt-v2", ["DEV"], version=2)): "unknown envelope version 2",
                await client.publish(plan("evt-x", ["DEV"], surprise=1)): "surprise: Extra inputs are not permitted",
            }
            await client.publish(plan("evt-good", ["DEV"]))
            done = await poll(lambda: _completed(client, 1))
            assert [b["event_id"] for b in done] == ["evt-good"]
            rejected = {b["stream_seq"]: b for s, b in await client.results() if s.endswith(".dispatch.rejected")}
            assert set(rejected) == set(bad)
            for seq, says in bad.items():
                assert says in rejected[seq]["reason"], rejected[seq]
                assert (rejected[seq]["subject"], rejected[seq]["stream"]) == (config.plan_subject, config.plan_stream)
            assert rejected[min(bad)]["raw"] == "{not json"
            assert await poll(lambda: _settled(client)) == {"pending": 0, "ack_pending": 0, "redelivered": 0}
            assert service.counts()["rejected"] == 4 and service.counts()["acked"] == 5
            assert service.alive()
    finally:
        await service.stop()


async def test_a_server_restart_mid_deliberation_loses_and_doubles_nothing(fleet, nats_server):
    config = bus_config(nats_server)
    service = await start(config, fleet)
    try:
        async with Client(config) as client:
            await client.publish(plan("evt-restart", ["DEV"], config={"rounds": 2, "judge": False}))
            did = plan_deliberation_id("evt-restart", "DEV")
            assert await poll(lambda: _started(client, did))
            nats_server.stop()  # while the deliberation runs (2 review rounds of 0.3 s calls)
            assert (await fleet.get(did)).status in ("queued", "running")
            assert (await fleet.wait(did, 60)).status == "done"  # it ends while the server is away
            nats_server.start()
            assert await poll(lambda: _completed(client, 1))
            assert await poll(lambda: _settled(client))
            results = await client.results()
            assert per_deliberation(results, ".deliberation.completed") == {did: 1}
            assert per_deliberation(results, ".deliberation.started") == {did: 1}
            assert service.bus.reconnects >= 1 or service.restarts >= 1
            assert service.counts()["completed"] == 1
    finally:
        await service.stop()


async def _started(client: Client, did: str) -> bool:
    return per_deliberation(await client.results(), ".deliberation.started").get(did) == 1


async def test_events_wait_nakd_while_the_engine_is_not_up(fleet, nats_server):
    from fleet.errors import EngineNotReadyError

    asked = []

    async def ready():  # the engine comes up on the third look
        asked.append(1)
        if len(asked) < 3:
            raise EngineNotReadyError("engine LLMServer:fake is UPDATING")

    service = await start(bus_config(nats_server), fleet, ready)
    try:
        async with Client(bus_config(nats_server)) as client:
            before = (await fleet.list_deliberations())[1]
            await client.publish(plan("evt-engine", ["DEV"]))
            assert await poll(lambda: _completed(client, 1))
            assert await poll(lambda: _settled(client))
            assert len(asked) == 3 and service.counts()["naked"] == 2 and service.counts()["acked"] == 1
            assert (await fleet.list_deliberations())[1] == before + 1
    finally:
        await service.stop()


async def test_a_full_queue_naks_with_a_delay_and_every_event_is_served_later(ray_session, nats_server):
    config = FleetConfig(engine=EngineSpec(kind="inproc_fake", fake=FakeEngineConfig(latency_s=0.3)),
                         coordinator_name="fleet-tests-bus-queue", max_concurrent=1, max_queued=1, council_size=1)
    small = await Fleet.start(config)
    service = await start(bus_config(nats_server), small)
    try:
        async with Client(bus_config(nats_server)) as client:
            events = {"evt-q1": ["DEV", "QA"], "evt-q2": ["DEV"], "evt-q3": ["QA"]}
            for event_id, roles in events.items():  # one slot and one queue place for 4 deliberations
                await client.publish(plan(event_id, roles))
            ids = {plan_deliberation_id(e, r) for e, roles in events.items() for r in roles}
            done = await poll(lambda: _completed(client, 4), 90)
            assert done and {b["deliberation_id"] for b in done} == ids
            assert await poll(lambda: _settled(client))
            results = await client.results()
            assert per_deliberation(results, ".deliberation.completed") == dict.fromkeys(ids, 1)
            assert not [b for s, b in results if s.endswith((".failed", ".rejected"))]
            counts = service.counts()
            assert counts["naked"] >= 1 and counts["acked"] == 3  # refused for a while, then each acked once
            assert counts["redelivered"] >= 1
            assert (await small.list_deliberations())[1] == 4  # none twice, none dropped
    finally:
        await service.stop()
        await small.shutdown()


async def test_the_serve_app_runs_the_consumer_shows_it_in_status_and_serve_restarts_it(serve_http, tmp_path):
    """The whole app as `serve run serve_configs/cpu_nats.yaml` deploys it (the fake engine): the
    `FleetBus` deployment consumes with a token the server requires, `/v1/status` shows its state with
    the token redacted, and when its replica's process is killed Serve starts another that goes on."""
    import httpx
    import ray
    from conftest import free_port
    from nats_server import NatsServer
    from ray import serve

    from fleet.serve_app import build_app

    token = "s3cret-bus-token"
    server = NatsServer(free_port(), tmp_path / "jetstream", token=token)
    server.start()
    app, coordinator = "fleet-bus-app", "fleet-tests-bus-serve"
    nats_block = {"servers": [server.url], "token": token, "ack_wait_s": 5.0, "nak_delay_s": 0.5,
                  "public_url": f"{serve_http}/bus"}
    args = {"engine": {"kind": "fake", "app_name": app, "placement_resource": None}, "council_size": 1,
            "coordinator_name": coordinator, "nats": nats_block}
    config = NatsConfig.model_validate(nats_block)

    def named() -> list[str]:
        return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                      if a["namespace"] == "serve" and app in a["name"] and "FleetBus" in a["name"])

    async def replicas() -> list[str]:
        return await asyncio.to_thread(named)

    async def bus_state(http: httpx.AsyncClient) -> dict | None:
        r = await http.get("/bus/v1/status")
        bus = r.json().get("bus", {}) if r.status_code == 200 else {}
        return bus if bus.get("connected") else None

    await asyncio.to_thread(serve.run, build_app(args), name=app, route_prefix="/bus")
    try:
        async with httpx.AsyncClient(base_url=serve_http, timeout=30) as http, Client(config) as client:
            state = await poll(lambda: bus_state(http), 60, 0.5)
            assert state and state["running"] and state["config"]["token"] == "**********"
            assert token not in (await http.get("/bus/v1/status")).text
            await client.publish(plan("evt-app-1", ["DEV"]))
            assert await poll(lambda: _completed(client, 1), 60)
            [before] = await replicas()
            ray.kill(await asyncio.to_thread(ray.get_actor, before, "serve"), no_restart=True)
            assert await poll(lambda: _replaced(replicas, before), 60, 0.5)  # Serve started another
            await client.publish(plan("evt-app-2", ["QA"]))
            done = await poll(lambda: _completed(client, 2), 60)
            assert done and sorted(b["event_id"] for b in done) == ["evt-app-1", "evt-app-2"]
            assert (await poll(lambda: bus_state(http), 30, 0.5))["acked"] == 1  # the new replica's one
            results = await client.results()
            assert Counter(s.rsplit(".", 1)[1] for s, _ in results)["completed"] == 2
    finally:
        await asyncio.to_thread(serve.delete, app)
        try:
            ray.kill(await asyncio.to_thread(ray.get_actor, coordinator, "fleet"))
        except ValueError:
            pass
        server.stop()


async def _replaced(replicas, before: str) -> bool:
    now = await replicas()
    return bool(now) and before not in now
