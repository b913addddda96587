"""The HTTP API: a Serve ingress deployment = fleet's routes + ray.serve.llm's OpenAI routes.

`FleetIngress` subclasses `ray.serve.llm`'s `OpenAiIngress`, so /v1/chat/completions, /v1/completions
and /v1/models are the maintained implementation, talking to the same engine deployments the agents
use. fleet's own routes (deliberations, events, councils, plan-approved, health, status) call the
`Fleet` driver API, i.e. the same coordinator code path as scripts and jobs. OpenAPI at /docs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import ray
from fastapi import FastAPI, Header, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from ray import serve
from ray.serve.llm.ingress import OpenAiIngress

from fleet.config.council import AgentSpec, CouncilSpec, NewAgent, NewCouncil
from fleet.config.fleet import FleetConfig
from fleet.driver import Fleet
from fleet.errors import EngineNotReadyError, FleetError, InvalidRequestError
from fleet.ingress.http import BearerAuth, BodyLimit, check_bind, install_error_handlers, sse
from fleet.ingress.web import mount_console
from fleet.schemas.api import DeliberationInput, DeliberationState, Lifecycle, PlanApproved, PlanDispatch

API_VERSION = "v1"
# `POST /v1/deliberations?wait=true`: the status code says how it ended (the body is the state).
WAIT_STATUS = {"done": 200, "failed": 500, "cancelled": 409, "queued": 202, "running": 202}


class DeliberationPage(BaseModel):
    items: list[DeliberationState]
    total: int
    offset: int
    limit: int
    next_offset: int | None


def make_app(api_token: str | None = None) -> FastAPI:
    """fleet's FastAPI app with the web console at /ui; with `api_token`, every route but /v1/health and
    the console's static page needs it as a bearer token."""
    app = FastAPI(title="fleet", version="0.1.0",
                  description="Councils of LLM agents deliberating on software-engineering tasks.")
    install_error_handlers(app)
    mount_console(app)
    app.add_middleware(BodyLimit)
    if api_token:
        app.add_middleware(BearerAuth, token=api_token)  # added last: runs first
    return app


class FleetIngress(OpenAiIngress):
    async def __init__(  # type: ignore[misc]  # Serve awaits an async __init__
            self, llm_deployments: dict[str, Any], model_cards: dict[str, Any], fleet_config: dict[str, Any],
            authenticated: bool = False, bus: Any = None) -> None:
        """authenticated: whether the app's middleware requires a bearer token (the token itself
        stays there). bus: the `FleetBus` deployment's handle, when the config has `nats`. Async:
        Serve awaits it, and it asks Serve's controller where HTTP is bound."""
        super().__init__(llm_deployments=llm_deployments, model_cards=model_cards)
        self.config = FleetConfig.model_validate(fleet_config)
        self.bus = bus
        self._fleet: Fleet | None = None
        self._fleet_lock = asyncio.Lock()
        # The bind lives in the Serve config's http_options, which the app builder never sees: ask the
        # controller (Serve's own name for it; no public API exposes the HTTP options to a replica).
        from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

        # Any: Ray types an actor handle's methods as Never (they are looked up at run time).
        controller: Any = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        http = await controller.get_http_config.remote()
        check_bind(http.host, http.port, authenticated, self.config.allow_unauthenticated)

    async def _get_fleet(self) -> Fleet:
        async with self._fleet_lock:
            if self._fleet is None:
                # The engine is part of this Serve app; the coordinator outlives any one replica.
                self._fleet = await Fleet.start(self.config, deploy=False, detached=True)
        return self._fleet

    async def _engine_status(self) -> str:
        app = (await asyncio.to_thread(serve.status)).applications.get(self.config.engine.app_name)
        deployment = app.deployments.get(self.config.engine.deployment_name) if app else None
        return str(deployment.status).rsplit(".", 1)[-1] if deployment else "MISSING"

    async def _require_engine(self) -> None:
        status = await self._engine_status()
        if status != "HEALTHY":
            raise EngineNotReadyError(f"engine {self.config.engine.deployment_name} is {status}; retry shortly")

    # -- health and status -----------------------------------------------------------------------

    async def health(self) -> dict[str, str]:
        """Liveness of the pieces: the engine deployment and the coordinator (it answers within 2 s).
        Always 200: a probe reads the fields; `status` is "ok" only when both are."""
        engine = await self._engine_status()
        try:
            fleet = await asyncio.wait_for(self._get_fleet(), 10)
            await asyncio.wait_for(fleet.status(), 2)
            coordinator = "ok"
        except (FleetError, TimeoutError) as e:
            coordinator = f"unavailable: {type(e).__name__}"
        ok = engine == "HEALTHY" and coordinator == "ok"
        return {"status": "ok" if ok else "degraded", "engine": engine, "coordinator": coordinator}

    async def fleet_status(self) -> dict[str, Any]:
        status = await (await self._get_fleet()).status()
        status = {**status, "engine": {**status["engine"], "status": await self._engine_status()}}
        if self.bus is not None:  # the NATS consumer's state, its secrets redacted
            try:
                status["bus"] = await asyncio.wait_for(self.bus.state.remote(), 5)
            except Exception as e:  # a replica restarting: say so, the rest of the status still answers
                status["bus"] = {"running": False, "error": f"{type(e).__name__}: {e}"}
        return status

    # -- deliberations ---------------------------------------------------------------------------

    async def create_deliberation(self, body: DeliberationInput, response: Response,
                                  wait: bool = Query(False, description="answer with the finished state: 200 "
                                                     "done, 500 failed, 409 cancelled, 202 still running after "
                                                     "the deliberation timeout")
                                  ) -> DeliberationState:
        await self._require_engine()
        fleet = await self._get_fleet()
        request = body.to_request(fleet.config.deliberation)  # ValidationError -> 422 (ingress/http.py)
        state = await fleet.submit(request)
        location = f"/{API_VERSION}/deliberations/{state.deliberation_id}"
        response.headers["Location"] = location
        if not wait:
            response.status_code = 202
            return state
        state = await fleet.wait(state.deliberation_id, request.config.timeouts.deliberation_s)
        response.status_code = WAIT_STATUS[state.status]
        return state

    async def get_deliberation(self, deliberation_id: str) -> DeliberationState:
        return await (await self._get_fleet()).get(deliberation_id)

    async def list_deliberations(self, role: str | None = None, status: Lifecycle | None = None,
                                 offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500)
                                 ) -> DeliberationPage:
        items, total = await (await self._get_fleet()).list_deliberations(role, status, offset, limit)
        nxt = offset + len(items)
        return DeliberationPage(items=items, total=total, offset=offset, limit=limit,
                                next_offset=nxt if nxt < total else None)

    async def deliberation_events(self, deliberation_id: str, after: int = Query(0, ge=0),
                                  last_event_id: str | None = Header(None)) -> StreamingResponse:
        fleet = await self._get_fleet()
        await fleet.get(deliberation_id)  # 404 before the stream starts
        if last_event_id is not None:
            if not last_event_id.isdigit():
                raise InvalidRequestError(f"Last-Event-ID must be an event number, got {last_event_id!r}")
            after = max(after, int(last_event_id))

        async def stream() -> AsyncIterator[str]:
            async for event in fleet.events(deliberation_id, after):
                yield sse(event)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def cancel_deliberation(self, deliberation_id: str) -> DeliberationState:
        return await (await self._get_fleet()).cancel(deliberation_id)

    # -- councils --------------------------------------------------------------------------------

    async def list_councils(self) -> list[CouncilSpec]:
        return await (await self._get_fleet()).councils()

    async def create_council(self, body: NewCouncil, response: Response) -> CouncilSpec:
        fleet = await self._get_fleet()
        try:
            spec = body.build(fleet.config.max_tokens)
        except ValueError as e:
            raise InvalidRequestError(str(e)) from e
        council = await fleet.create_council(spec)
        response.status_code = 201
        response.headers["Location"] = f"/{API_VERSION}/councils/{council.role}"
        return council

    async def get_council(self, role: str) -> CouncilSpec:
        return await (await self._get_fleet()).council(role)

    async def delete_council(self, role: str) -> Response:
        await (await self._get_fleet()).delete_council(role)
        return Response(status_code=204)

    async def add_agent(self, role: str, body: NewAgent, response: Response) -> AgentSpec:
        agent = await (await self._get_fleet()).add_agent(role, body)
        response.status_code = 201
        return agent

    async def remove_agent(self, role: str, agent_id: str) -> Response:
        await (await self._get_fleet()).remove_agent(role, agent_id)
        return Response(status_code=204)

    # -- events from elsewhere -------------------------------------------------------------------

    async def plan_approved(self, body: PlanApproved, response: Response) -> PlanDispatch:
        await self._require_engine()
        response.status_code = 202
        return await (await self._get_fleet()).plan_approved(body)


V = f"/{API_VERSION}"
FLEET_ENDPOINTS = {
    # OpenAI-compatible routes: ray.serve.llm's own handlers.
    "models": lambda app: app.get(f"{V}/models"),
    "model_data": lambda app: app.get(V + "/models/{model:path}"),
    "completions": lambda app: app.post(f"{V}/completions"),
    "chat": lambda app: app.post(f"{V}/chat/completions"),
    # fleet's routes.
    "health": lambda app: app.get(f"{V}/health", tags=["fleet"]),
    "fleet_status": lambda app: app.get(f"{V}/status", tags=["fleet"]),
    "create_deliberation": lambda app: app.post(f"{V}/deliberations", tags=["deliberations"],
                                                response_model=DeliberationState, status_code=200),
    "list_deliberations": lambda app: app.get(f"{V}/deliberations", tags=["deliberations"]),
    "get_deliberation": lambda app: app.get(V + "/deliberations/{deliberation_id}", tags=["deliberations"]),
    "deliberation_events": lambda app: app.get(V + "/deliberations/{deliberation_id}/events",
                                               tags=["deliberations"], response_class=StreamingResponse),
    "cancel_deliberation": lambda app: app.delete(V + "/deliberations/{deliberation_id}", tags=["deliberations"]),
    "list_councils": lambda app: app.get(f"{V}/councils", tags=["councils"]),
    "create_council": lambda app: app.post(f"{V}/councils", tags=["councils"], status_code=201),
    "get_council": lambda app: app.get(V + "/councils/{role}", tags=["councils"]),
    "delete_council": lambda app: app.delete(V + "/councils/{role}", tags=["councils"], status_code=204),
    "add_agent": lambda app: app.post(V + "/councils/{role}/agents", tags=["councils"], status_code=201),
    "remove_agent": lambda app: app.delete(V + "/councils/{role}/agents/{agent_id}", tags=["councils"],
                                           status_code=204),
    "plan_approved": lambda app: app.post(f"{V}/events/plan-approved", tags=["events"], status_code=202),
}
