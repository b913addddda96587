"""How callers outside the actor reach the coordinator: `CoordinatorClient`, the actor's Ray handle
behind `CoordinatorAPI`, one explicit method per call.

    client = CoordinatorClient(handle, config)
    state = await client.submit(request)          # -> handle.submit.remote(request, None), awaited

Every call is awaited under a timeout: `CONTROL_TIMEOUT_S` for bookkeeping; for `run`, `sample`,
`wait` and `events` the call's own bound plus `_SLACK_S`. Timing out or being cancelled cancels the
coordinator's work for the call (`ray.cancel` is recursive: a deliberation stops too). fleet's own
errors come back as themselves; a coordinator whose process died is `CoordinatorUnavailableError`
(503): Ray restarts it, and the next call looks the coordinator up by name again (the restarted
actor, or none: then that call says it is gone).

What it leaves out: starting Ray, the engine or the coordinator (`fleet.bootstrap`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import ray

from fleet.config.council import AgentSpec, CouncilSpec, NewAgent
from fleet.config.deliberation import DeliberationRequest, SampleRequest
from fleet.config.fleet import FleetConfig
from fleet.errors import CoordinatorUnavailableError, FleetError
from fleet.schemas.api import DeliberationEvent, DeliberationState, Lifecycle, PlanApproved, PlanDispatch
from fleet.schemas.record import DeliberationRecord, SampleResult

CONTROL_TIMEOUT_S = 60.0  # coordinator bookkeeping calls (councils, status, ...)
_SLACK_S = 30.0  # beyond a call's own bound (a deliberation's timeout, a long poll): the trip and the queue

# An actor handle: Ray's handles are untyped, so the client is where the types come back.
ActorHandle = Any


async def find_coordinator(config: FleetConfig) -> ActorHandle | None:
    """The named coordinator actor of `config` on the connected Ray, or None when none runs."""
    try:  # ray.get_actor asks the GCS synchronously: off the loop
        return await asyncio.to_thread(ray.get_actor, config.coordinator_name, config.ray.namespace)
    except ValueError:
        return None


class CoordinatorClient:
    """`CoordinatorAPI` over the coordinator actor's handle. `config` names the actor (name and
    namespace), to look it up again after its process died."""

    def __init__(self, handle: ActorHandle, config: FleetConfig) -> None:
        self.handle = handle  # the actor in use (replaced when a dead one is looked up again)
        self.config = config
        self._stale = False  # the handle's actor died: look the coordinator up by name before the next call

    # -- the fleet -------------------------------------------------------------------------------

    async def ready(self) -> bool:
        ok: bool = await self._call(lambda c: c.ready.remote())
        return ok

    async def fleet_config(self) -> FleetConfig:
        config: FleetConfig = await self._call(lambda c: c.fleet_config.remote())
        return config

    async def status(self) -> dict[str, Any]:
        status: dict[str, Any] = await self._call(lambda c: c.status.remote())
        return status

    # -- councils --------------------------------------------------------------------------------

    async def list_councils(self) -> list[CouncilSpec]:
        councils: list[CouncilSpec] = await self._call(lambda c: c.list_councils.remote())
        return councils

    async def get_council(self, role: str) -> CouncilSpec:
        council: CouncilSpec = await self._call(lambda c: c.get_council.remote(role))
        return council

    async def create_council(self, spec: CouncilSpec) -> CouncilSpec:
        council: CouncilSpec = await self._call(lambda c: c.create_council.remote(spec))
        return council

    async def delete_council(self, role: str) -> None:
        await self._call(lambda c: c.delete_council.remote(role))

    async def add_agent(self, role: str, new: NewAgent) -> AgentSpec:
        agent: AgentSpec = await self._call(lambda c: c.add_agent.remote(role, new))
        return agent

    async def remove_agent(self, role: str, agent_id: str) -> None:
        await self._call(lambda c: c.remove_agent.remote(role, agent_id))

    async def agent_nodes(self) -> dict[str, str]:
        nodes: dict[str, str] = await self._call(lambda c: c.agent_nodes.remote())
        return nodes

    # -- deliberations ---------------------------------------------------------------------------

    async def submit(self, request: DeliberationRequest, deliberation_id: str | None = None) -> DeliberationState:
        state: DeliberationState = await self._call(lambda c: c.submit.remote(request, deliberation_id))
        return state

    async def run(self, request: DeliberationRequest, deliberation_id: str | None = None) -> DeliberationRecord:
        record: DeliberationRecord = await self._call(lambda c: c.run.remote(request, deliberation_id),
                                                      request.config.timeouts.deliberation_s + _SLACK_S)
        return record

    async def sample(self, request: SampleRequest) -> SampleResult:
        result: SampleResult = await self._call(lambda c: c.sample.remote(request),
                                                request.timeouts.stage_s + _SLACK_S)
        return result

    async def wait(self, deliberation_id: str, timeout_s: float) -> DeliberationState:
        state: DeliberationState = await self._call(lambda c: c.wait.remote(deliberation_id, timeout_s),
                                                    timeout_s + _SLACK_S)
        return state

    async def get_deliberation(self, deliberation_id: str) -> DeliberationState:
        state: DeliberationState = await self._call(lambda c: c.get_deliberation.remote(deliberation_id))
        return state

    async def list_deliberations(self, role: str | None = None, status: Lifecycle | None = None, offset: int = 0,
                                 limit: int = 50) -> tuple[list[DeliberationState], int]:
        page: tuple[list[DeliberationState], int] = await self._call(
            lambda c: c.list_deliberations.remote(role, status, offset, limit))
        return page

    async def events(self, deliberation_id: str, after: int = 0,
                     wait_s: float = 15.0) -> tuple[list[DeliberationEvent], bool]:
        news: tuple[list[DeliberationEvent], bool] = await self._call(
            lambda c: c.events.remote(deliberation_id, after, wait_s), wait_s + _SLACK_S)
        return news

    async def cancel(self, deliberation_id: str) -> DeliberationState:
        state: DeliberationState = await self._call(lambda c: c.cancel.remote(deliberation_id))
        return state

    async def plan_approved(self, event: PlanApproved) -> PlanDispatch:
        answer: PlanDispatch = await self._call(lambda c: c.plan_approved.remote(event))
        return answer

    # -- the one way a call crosses to the actor -------------------------------------------------

    async def _call(self, send: Callable[[ActorHandle], Any], timeout_s: float = CONTROL_TIMEOUT_S) -> Any:
        """`send(handle)` starts the call on the live actor (an `ObjectRef`); its result, awaited under
        `timeout_s`. The result is untyped here: each method above names its type."""
        if self._stale:
            found = await find_coordinator(self.config)
            if found is None:
                raise CoordinatorUnavailableError(
                    f"no fleet coordinator named {self.config.coordinator_name!r} is running: it died and was not "
                    "restarted; start the fleet again")
            self.handle, self._stale = found, False
        ref = send(self.handle)
        try:
            return await asyncio.wait_for(ref, timeout_s)
        except (asyncio.CancelledError, TimeoutError):
            ray.cancel(ref)  # recursive: the coordinator's work for this call (a deliberation) stops too
            raise
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, FleetError):
                raise e.cause from None
            raise
        except ray.exceptions.RayActorError as e:
            self._stale = True  # the next call looks it up by name: the restarted actor, or none
            if e.actor_init_failed:  # its constructor raised (e.g. the state store): say what it said
                raise CoordinatorUnavailableError(f"the fleet coordinator could not start: {e}") from e
            raise CoordinatorUnavailableError(
                f"the fleet coordinator is unavailable ({type(e).__name__}: its process died; Ray restarts it): "
                f"the call did not complete; retry in {CoordinatorUnavailableError.retry_after_s}s") from e
