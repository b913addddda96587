"""The ingress's HTTP plumbing without Serve: error mapping, body limit, engine readiness, SSE framing."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from fleet.errors import EngineNotReadyError, NotFoundError
from fleet.ingress.app import FleetIngress, make_app
from fleet.ingress.http import MAX_BODY_BYTES, sse
from fleet.record import DeliberationEvent, StatusChange

pytestmark = pytest.mark.unit


@pytest.fixture
async def client():
    app = make_app()

    @app.post("/boom/{kind}")
    async def boom(kind: str, body: dict):
        raise {"engine": EngineNotReadyError("engine is DEPLOYING"), "missing": NotFoundError("no such thing")}[kind]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_fleet_errors_map_to_their_status_with_a_reason(client):
    r = await client.post("/boom/engine", json={})
    assert (r.status_code, r.json()) == (503, {"error": "EngineNotReadyError", "message": "engine is DEPLOYING"})
    assert (await client.post("/boom/missing", json={})).status_code == 404


async def test_oversized_bodies_are_413_declared_or_chunked(client):
    big = b"x" * (MAX_BODY_BYTES + 1)
    assert (await client.post("/boom/missing", content=big)).status_code == 413

    async def chunks():
        for _ in range(3):
            yield b"x" * (MAX_BODY_BYTES // 2)

    assert (await client.post("/boom/missing", content=chunks())).status_code == 413


async def test_engine_not_healthy_means_503():
    ingress = object.__new__(FleetIngress)  # no Serve: only the readiness rule is under test

    async def status():
        return "UPDATING"

    ingress._engine_status = status
    ingress.config = type("C", (), {"engine": type("E", (), {"deployment_name": "LLMServer:smollm2"})})
    with pytest.raises(EngineNotReadyError, match="UPDATING"):
        await FleetIngress._require_engine(ingress)


def test_sse_framing():
    event = DeliberationEvent(seq=7, deliberation_id="d", type="status", at=datetime.now(UTC),
                              data=StatusChange(status="running"))
    frame = sse(event)
    assert frame.startswith("id: 7\nevent: status\ndata: {") and frame.endswith("\n\n")
    assert sse(None) == ": keep-alive\n\n"
