"""The ingress's HTTP plumbing without Serve: error mapping, body limit, engine readiness, SSE framing."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from fleet.errors import EngineNotReadyError, NotFoundError, OverloadedError
from fleet.ingress.app import FleetIngress, make_app
from fleet.ingress.http import MAX_BODY_BYTES, sse
from fleet.schemas.api import DeliberationEvent, DeliberationInput, StatusChange

pytestmark = pytest.mark.unit


def boom_app(token: str | None = None):
    app = make_app(api_token=token)

    @app.post("/boom/{kind}")
    async def boom(kind: str, body: dict):
        raise {"engine": EngineNotReadyError("engine is DEPLOYING"), "missing": NotFoundError("no such thing"),
               "full": OverloadedError("64 deliberations are waiting"), "bug": KeyError("oops")}[kind]

    @app.get("/v1/health")
    async def health():
        return {"status": "ok"}

    return app


@pytest.fixture
async def client():
    # raise_app_exceptions=False: answer as a server would (Starlette re-raises after the 500 handler).
    transport = httpx.ASGITransport(app=boom_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_fleet_errors_map_to_their_status_with_a_reason(client):
    r = await client.post("/boom/engine", json={})
    assert (r.status_code, r.json()) == (503, {"error": "EngineNotReadyError", "message": "engine is DEPLOYING"})
    assert (await client.post("/boom/missing", json={})).status_code == 404


async def test_overload_says_when_to_retry_and_a_bug_still_answers_in_the_error_shape(client):
    r = await client.post("/boom/full", json={})
    assert (r.status_code, r.headers["retry-after"], r.json()["error"]) == (503, "10", "OverloadedError")
    r = await client.post("/boom/bug", json={})
    assert r.status_code == 500 and r.json() == {
        "error": "InternalError", "message": "KeyError: the server failed; see the ingress logs"}


async def test_bearer_token_guards_every_route_but_health():
    transport = httpx.ASGITransport(app=boom_app(token="s3cret-token"), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/v1/health")).status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"},
                        {"Authorization": "s3cret-token"}):
            r = await c.post("/boom/missing", json={}, headers=headers)
            assert r.status_code == 401 and r.json()["error"] == "UnauthorizedError", headers
            assert "s3cret" not in r.text and r.headers["www-authenticate"] == "Bearer"
        for path in ("/openapi.json", "/docs"):
            assert (await c.get(path)).status_code == 401
        ok = await c.post("/boom/missing", json={}, headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 404  # through the door; the route's own answer


def test_the_token_comes_from_config_or_env_and_never_reaches_the_fleet_config(monkeypatch):
    from pydantic import SecretStr

    from fleet.config.fleet import FleetConfig

    monkeypatch.delenv("FLEET_API_TOKEN", raising=False)
    assert FleetConfig().resolved_token() is None
    monkeypatch.setenv("FLEET_API_TOKEN", "from-env")
    assert FleetConfig().resolved_token() == "from-env"
    config = FleetConfig(api_token="from-config")
    assert config.resolved_token() == "from-config" and "from-config" not in repr(config)
    assert config.same_fleet(FleetConfig(api_token=SecretStr("another")))  # auth is the edge's, not the fleet's


@pytest.mark.parametrize(("status", "code"), [("done", 200), ("failed", 500), ("cancelled", 409), ("running", 202)])
async def test_wait_true_answers_with_a_status_code_that_says_how_it_ended(status, code):
    from fastapi import Response

    from fleet.config.fleet import FleetConfig
    from fleet.schemas.api import DeliberationInput, DeliberationState

    class StandIn:
        config = FleetConfig()

        async def submit(self, request):
            return DeliberationState(deliberation_id="d1", role="DEV", status="queued", task_id="t",
                                     created_at=datetime.now(UTC))

        async def wait(self, deliberation_id, timeout_s):
            return DeliberationState(deliberation_id=deliberation_id, role="DEV", status=status, task_id="t",
                                     created_at=datetime.now(UTC))

    ingress = object.__new__(FleetIngress)

    async def fleet():
        return StandIn()

    async def ready():
        return None

    ingress._get_fleet, ingress._require_engine = fleet, ready
    response = Response()
    state = await FleetIngress.create_deliberation(ingress, DeliberationInput(task="x"), response, wait=True)
    assert (state.status, response.status_code, response.headers["location"]) == (status, code, "/v1/deliberations/d1")


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


@pytest.mark.parametrize(("host", "authenticated", "allowed", "refused"), [
    ("127.0.0.1", False, False, False),
    ("::1", False, False, False),
    ("localhost", False, False, False),
    ("0.0.0.0", False, False, True),
    ("10.0.0.7", False, False, True),
    ("fleet.internal", False, False, True),  # a name may resolve to anything
    ("0.0.0.0", True, False, False),  # a token: anyone may reach it, only token holders get in
    ("0.0.0.0", False, True, False),  # the operator says a proxy authenticates
])
def test_a_non_loopback_bind_needs_a_token(host, authenticated, allowed, refused):
    from fleet.errors import InvalidRequestError
    from fleet.ingress.http import check_bind

    if refused:
        with pytest.raises(InvalidRequestError, match=f"refusing to serve fleet on {host}:8000 without auth"):
            check_bind(host, 8000, authenticated, allowed)
    else:
        check_bind(host, 8000, authenticated, allowed)


def test_the_app_builder_hands_the_ingress_the_database_url_but_not_the_token():
    from fleet.serve_app import build_app

    app = build_app({"engine": {"kind": "fake"}, "state_url": "postgresql://u:pw@db/fleet", "api_token": "tok"})
    kwargs = app._bound_deployment.init_kwargs  # what Serve passes to FleetIngress.__init__
    assert kwargs["fleet_config"]["state_url"] == "postgresql://u:pw@db/fleet"  # not pydantic's "**********"
    assert "api_token" not in kwargs["fleet_config"] and kwargs["authenticated"] is True
    assert build_app({"engine": {"kind": "fake"}})._bound_deployment.init_kwargs["authenticated"] is False


async def test_the_console_page_and_assets_need_no_token_but_data_does_and_a_route_prefix_is_honoured():
    transport = httpx.ASGITransport(app=boom_app(token="s3cret-token"), raise_app_exceptions=False,
                                    root_path="/behind/proxy")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        page = await c.get("/behind/proxy/ui")
        assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src 'self'")
        assert 'data-root="/behind/proxy"' in page.text and 'src="/behind/proxy/ui/static/app.js"' in page.text
        for asset in ("app.js", "api.js", "board.js", "forms.js", "views.js", "dom.js", "highlight.js", "console.css"):
            assert (await c.get(f"/behind/proxy/ui/static/{asset}")).status_code == 200, asset
        assert (await c.get("/behind/proxy/ui/static/../../v1/status")).status_code in (401, 404)
        assert (await c.get("/behind/proxy/v1/health")).status_code == 200  # open below a prefix too
        for path in ("/behind/proxy/uix", "/behind/proxy/ui/other", "/behind/proxy/boom/missing"):
            assert (await c.get(path)).status_code == 401, path


async def test_a_422_names_each_field_for_a_form_to_show_beside_it():
    app = make_app()

    @app.post("/start")
    async def start(body: DeliberationInput):  # imported at the top: FastAPI resolves the annotation there
        return {}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        task = {"description": "x", "tests": [{"source": "def f(:"}]}
        r = await c.post("/start", json={"task": task, "num_agents": 99})
    body = r.json()
    assert r.status_code == 422 and body["error"] == "InvalidRequestError"
    fields = {f["field"]: f["message"] for f in body["fields"]}
    assert "less than or equal to 32" in fields["num_agents"]
    [tests] = [m for f, m in fields.items() if f.startswith("task.") and f.endswith("tests.0")]
    assert "does not parse" in tests and all(m in body["message"] for m in fields.values())
