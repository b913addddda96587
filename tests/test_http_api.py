"""The HTTP API on 127.0.0.1, served by Ray Serve with the real CPU engine (the `fleet_app` fixture)."""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]

SMALL = {"num_agents": 2, "rounds": 1, "judge": False}  # 2 drafts + 2 critiques + 2 revisions + the architect


@pytest.fixture
async def client(fleet_app):
    async with httpx.AsyncClient(base_url=fleet_app, timeout=600) as c:
        yield c


async def read_sse(client: httpx.AsyncClient, did: str, headers: dict | None = None) -> list[dict]:
    """All events of a deliberation's stream (it ends when the deliberation has)."""
    events, current = [], {}
    async with client.stream("GET", f"/v1/deliberations/{did}/events", headers=headers or {}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(": ")
                current[key] = value
            elif line == "" and current:
                event = json.loads(current["data"])  # the whole DeliberationEvent
                assert (event["seq"], event["type"]) == (int(current["id"]), current["event"])
                events.append({"id": event["seq"], "type": event["type"], "data": event["data"]})
                current = {}
    return events


async def test_health_and_openapi(client):
    import asyncio

    # The ingress starts its coordinator on its first request; until it answers, health says so.
    for _ in range(60):
        health = (await client.get("/v1/health")).json()
        if health["coordinator"] == "ok":
            break
        assert health["coordinator"].startswith("unavailable") and health["status"] == "degraded"
        await asyncio.sleep(1)
    assert health == {"status": "ok", "engine": "HEALTHY", "coordinator": "ok"}
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/v1/deliberations", "/v1/deliberations/{deliberation_id}/events", "/v1/councils/{role}/agents",
                 "/v1/events/plan-approved", "/v1/chat/completions", "/v1/models", "/v1/status"):
        assert path in paths


async def test_wait_true_returns_the_full_record(client):
    r = await client.post("/v1/deliberations?wait=true", json={"task": "Add a /health endpoint", **SMALL})
    assert r.status_code == 200, r.text
    state = r.json()
    assert state["status"] == "done" and r.headers["location"] == f"/v1/deliberations/{state['deliberation_id']}"
    record = state["record"]
    assert len(record["proposals"]) == 4 and len(record["critiques"]) == 2
    assert record["selection"]["winner_id"] in {"agent-dev-001", "agent-dev-002"}
    assert record["tokens"]["completion_tokens"] > 0


async def test_202_then_events_stream_with_late_join_and_reconnect(client):
    r = await client.post("/v1/deliberations", json={"task": "Add request logging", "role": "devops", **SMALL})
    assert r.status_code == 202
    did, location = r.json()["deliberation_id"], r.headers["location"]
    live = await read_sse(client, did)  # joins at once, follows to the end
    assert [e["id"] for e in live] == list(range(1, len(live) + 1))
    types = [e["type"] for e in live]
    assert types[0] == "status" and live[0]["data"]["status"] == "queued"
    assert {"proposal", "critique", "revision", "score", "winner"} <= set(types)
    assert live[-1]["type"] == "status" and live[-1]["data"]["status"] == "done"

    late = await read_sse(client, did)  # joins after the end: the whole history
    assert late == live
    resumed = await read_sse(client, did, headers={"Last-Event-ID": "5"})
    assert resumed == live[5:]

    state = (await client.get(location)).json()
    winner = live[types.index("winner")]["data"]["winner_id"]
    assert state["status"] == "done" and state["record"]["selection"]["winner_id"] == winner


async def test_list_filters_and_paginates(client):
    page = (await client.get("/v1/deliberations", params={"role": "DEVOPS", "status": "done", "limit": 1})).json()
    assert page["total"] >= 1 and len(page["items"]) == 1
    assert all(i["role"] == "DEVOPS" and i["status"] == "done" for i in page["items"])
    everything = (await client.get("/v1/deliberations", params={"limit": 500})).json()
    assert everything["total"] >= 2 and everything["next_offset"] is None


async def test_cancel_aborts_and_the_record_says_cancelled(client):
    r = await client.post("/v1/deliberations", json={"task": "Rewrite the billing service", "num_agents": 3,
                                                     "rounds": 3})
    did = r.json()["deliberation_id"]
    cancelled = await client.delete(f"/v1/deliberations/{did}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    state = (await client.get(f"/v1/deliberations/{did}")).json()
    assert state["status"] == "cancelled"
    assert state["record"] is None or state["record"]["status"] == "cancelled"
    assert (await client.delete(f"/v1/deliberations/{did}")).status_code == 409
    events = await read_sse(client, did)
    assert events[-1]["data"]["status"] == "cancelled"


async def test_plan_approved_dispatches_per_role_and_is_idempotent(client):
    event = {"event_id": "evt-42", "plan_id": "plan-7", "story_id": "story-3", "roles": ["DEV", "QA", "NOPE"],
             "task": {"description": "Add password reset"}, "config": {"rounds": 0, "judge": False}}
    first = await client.post("/v1/events/plan-approved", json=event)
    assert first.status_code == 202
    body = first.json()
    assert (body["total"], body["started"], body["failed"]) == (3, 2, 1)
    by_role = {r["role"]: r for r in body["results"]}
    assert by_role["NOPE"]["error_type"] == "NotFoundError" and by_role["DEV"]["deliberation_id"]
    before = (await client.get("/v1/deliberations")).json()["total"]
    again = await client.post("/v1/events/plan-approved", json=event)
    assert again.json() == body
    assert (await client.get("/v1/deliberations")).json()["total"] == before
    state = (await client.get(f"/v1/deliberations/{by_role['QA']['deliberation_id']}")).json()
    assert state["story_id"] == "story-3"
    for role in ("DEV", "QA"):  # done with them: they would otherwise load the engine under later tests
        assert (await client.delete(f"/v1/deliberations/{by_role[role]['deliberation_id']}")).status_code in (200, 409)


async def test_councils_crud(client):
    roles = {c["role"] for c in (await client.get("/v1/councils")).json()}
    assert roles >= {"DEV", "QA", "ARCHITECT", "DEVOPS", "DATA"}
    new = {"role": "security", "num_agents": 2, "persona": "You are an application security engineer."}
    created = await client.post("/v1/councils", json=new)
    assert created.status_code == 201 and [a["agent_id"] for a in created.json()["agents"]] == [
        "agent-security-001", "agent-security-002"]
    assert (await client.post("/v1/councils", json=new)).status_code == 409
    added = await client.post("/v1/councils/SECURITY/agents", json={"lens": "You think like an attacker.",
                                                                    "sampling": {"temperature": 0.2}})
    assert added.status_code == 201 and added.json()["agent_id"] == "agent-security-003"
    assert added.json()["sampling"]["temperature"] == 0.2
    assert (await client.delete("/v1/councils/SECURITY/agents/agent-security-001")).status_code == 204
    assert (await client.delete("/v1/councils/SECURITY/agents/agent-nobody")).status_code == 404
    council = (await client.get("/v1/councils/security")).json()
    assert [a["agent_id"] for a in council["agents"]] == ["agent-security-002", "agent-security-003"]
    assert (await client.delete("/v1/councils/SECURITY")).status_code == 204
    assert (await client.get("/v1/councils/SECURITY")).status_code == 404
    missing_persona = await client.post("/v1/councils", json={"role": "LEGAL"})
    assert missing_persona.status_code == 422 and "persona" in missing_persona.json()["message"]


@pytest.mark.parametrize(("method", "path", "body", "status", "says"), [
    ("post", "/v1/deliberations", {"task": "x", "rounds": -1}, 422, "rounds"),
    ("post", "/v1/deliberations", {"task": "x", "num_agents": 500}, 422, "num_agents"),
    ("post", "/v1/deliberations", {"task": "   "}, 422, "task description is empty"),
    ("post", "/v1/deliberations", {"description": "no task field"}, 422, "task"),
    ("post", "/v1/deliberations", {"task": "x", "role": "ASTRONAUT"}, 404, "ASTRONAUT"),
    ("get", "/v1/deliberations/delib-nope", None, 404, "delib-nope"),
    ("delete", "/v1/deliberations/delib-nope", None, 404, "delib-nope"),
    ("get", "/v1/councils/NOPE", None, 404, "NOPE"),
    ("post", "/v1/councils", {"role": "DEV"}, 409, "exists"),
    ("post", "/v1/deliberations", {"task": "x" * (2 << 20)}, 413, "exceeds"),
    ("post", "/v1/deliberations", {"task": {"description": "Make the tests pass", "language": "python", "tests": [
        {"kind": "pytest", "visible": True, "source": "def test_x():\n    assert 1 == 1\n" * 1500}]}},
     422, "too long for the engine's context window"),
])
async def test_error_statuses_say_what_is_wrong(client, method, path, body, status, says):
    r = await client.request(method.upper(), path, json=body)
    assert r.status_code == status, r.text
    assert says in r.json()["message"] and r.json()["error"]


async def test_openai_client_talks_to_the_same_engine(fleet_app):
    import openai

    client = openai.AsyncOpenAI(base_url=f"{fleet_app}/v1", api_key="not-needed")
    models = await client.models.list()
    assert [m.id for m in models.data] == ["smollm2"]
    chat = await client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Say hello."}], max_tokens=16, temperature=0)
    assert chat.choices[0].message.content and chat.usage.completion_tokens <= 16
    completion = await client.completions.create(model="smollm2", prompt="def add(a, b):", max_tokens=8)
    assert completion.choices[0].text and completion.usage.completion_tokens <= 8


async def test_fifty_open_event_streams_do_not_starve_health(client, fleet_app):
    """Serve's default max_ongoing_requests (5) let six SSE streams block /v1/health; the ingress now
    holds 256 requests per replica."""
    import asyncio

    r = await client.post("/v1/deliberations", json={"task": "Add an audit log", "num_agents": 2, "rounds": 2})
    did = r.json()["deliberation_id"]
    opened = asyncio.Event()
    count = 0

    async def hold():
        nonlocal count
        async with httpx.AsyncClient(base_url=fleet_app, timeout=600) as c:
            async with c.stream("GET", f"/v1/deliberations/{did}/events") as s:
                assert s.status_code == 200
                count += 1
                if count == 50:
                    opened.set()
                async for _ in s.aiter_lines():
                    pass

    streams = [asyncio.create_task(hold()) for _ in range(50)]
    try:
        await asyncio.wait_for(opened.wait(), 120)
        async with httpx.AsyncClient(base_url=fleet_app, timeout=5) as c:
            health = await c.get("/v1/health")
        assert health.status_code == 200 and health.json()["engine"] == "HEALTHY"
    finally:
        await client.delete(f"/v1/deliberations/{did}")
        for t in streams:
            t.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
