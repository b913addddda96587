"""The coordinator's API: what every way into fleet may ask of it, as one typed interface.

Two classes implement `CoordinatorAPI`: the actor class itself (`fleet.coordinator.coordinator.
Coordinator`, run in-process by some tests) and the driver side's `CoordinatorClient`
(`fleet.coordinator.client`), which sends each call to the actor over Ray. `Fleet` (the driver API),
the ingress, the bus, the CLI, the batch job and `fleet eval` only ever hold a `CoordinatorAPI`; a
type checker follows a call from any of them to the actor (the conformance of both classes is
checked below, under `TYPE_CHECKING`).

Conventions, for every method:
- Errors are fleet's own (`fleet.errors`) and arrive as themselves, also across the actor boundary:
  `NotFoundError` (404) for an unknown role, council, agent or deliberation id, `ConflictError` (409)
  when something exists already or has ended, `InvalidRequestError` (422) for a request the council
  cannot run. Through the client, a coordinator whose process died is `CoordinatorUnavailableError`
  (503: Ray restarts it; retry), and each call is bounded by a timeout (`TimeoutError`).
- Deliberation ids are the coordinator's (`delib-...`), or the caller's own when given.
- Nothing here streams: `events` is a long poll that the driver turns into a stream.

What it leaves out: how a fleet is started (`fleet.bootstrap`) and the driver conveniences that build
requests from loose arguments (`fleet.driver.Fleet`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from fleet.config.council import AgentSpec, CouncilSpec, NewAgent
from fleet.config.deliberation import DeliberationRequest, SampleRequest
from fleet.config.fleet import FleetConfig
from fleet.schemas.api import DeliberationEvent, DeliberationState, Lifecycle, PlanApproved, PlanDispatch
from fleet.schemas.record import DeliberationRecord, SampleResult


class CoordinatorAPI(Protocol):
    """The coordinator's public calls (all async). See the module docstring for the error and
    timeout conventions every method shares."""

    # -- the fleet -------------------------------------------------------------------------------

    async def ready(self) -> bool:
        """True once the coordinator runs and its engine connection (the judge's) is warm. Raises an
        `EngineError` when the engine cannot be reached."""
        ...

    async def fleet_config(self) -> FleetConfig:
        """The config this coordinator runs with (`Fleet.connect` adopts it; `Fleet.start` compares
        it with its own, `FleetConfig.same_fleet`)."""
        ...

    async def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot for `/v1/status`: councils, deliberations in flight, queued and
        finished (per role and outcome), replaced agent actors, resumed runs, the prompt check, the
        engine and the state store (its last write error). Never raises."""
        ...

    # -- councils --------------------------------------------------------------------------------

    async def list_councils(self) -> list[CouncilSpec]:
        """Every registered council, in registration order."""
        ...

    async def get_council(self, role: str) -> CouncilSpec:
        """The council of `role` (case-insensitive); `NotFoundError` when there is none."""
        ...

    async def create_council(self, spec: CouncilSpec) -> CouncilSpec:
        """Register `spec` (stored, its agents started in the background) and return it;
        `ConflictError` when its role has a council already."""
        ...

    async def delete_council(self, role: str) -> None:
        """Forget the council of `role` and stop its agents' actors; `NotFoundError` when there is none."""
        ...

    async def add_agent(self, role: str, new: NewAgent) -> AgentSpec:
        """Add an agent to the council of `role` (id, lens and seed chosen unless given) and return it;
        `NotFoundError` for an unknown role, `ConflictError` when the council is full or the id taken."""
        ...

    async def remove_agent(self, role: str, agent_id: str) -> None:
        """Remove an agent from its council and stop its actor; `NotFoundError` for an unknown role or
        agent, `ConflictError` for the council's last agent (delete the council instead)."""
        ...

    async def agent_nodes(self) -> dict[str, str]:
        """agent_id -> Ray node id, for every agent actor the coordinator holds (placement checks)."""
        ...

    # -- deliberations ---------------------------------------------------------------------------

    async def submit(self, request: DeliberationRequest, deliberation_id: str | None = None) -> DeliberationState:
        """Accept a deliberation and start it in the background; its (queued) state at once. Refused
        before anything is stored: an unknown role (`NotFoundError`), a quorum larger than the council
        or a prompt that can outgrow the engine's context window (`InvalidRequestError`), an id in use
        (`ConflictError`), a full queue (`OverloadedError`, 503: retry later)."""
        ...

    async def run(self, request: DeliberationRequest, deliberation_id: str | None = None) -> DeliberationRecord:
        """`submit`, then wait for the end: the record. `DeliberationFailedError` (with the partial
        record) when the quorum is lost; `asyncio.CancelledError` when it was cancelled. Cancelling
        this call cancels the deliberation."""
        ...

    async def sample(self, request: SampleRequest) -> SampleResult:
        """`request.n` independent first drafts from the council's agents in turn, no review (one
        deliberation slot): the baselines of `fleet eval`. A failed call is a failure in the result,
        never retried; `NotFoundError` for an unknown role."""
        ...

    async def wait(self, deliberation_id: str, timeout_s: float) -> DeliberationState:
        """The state once the deliberation has ended, or as it is after `timeout_s`; `NotFoundError`
        for an unknown id."""
        ...

    async def get_deliberation(self, deliberation_id: str) -> DeliberationState:
        """The deliberation's state (its record once done); `NotFoundError` for an unknown id."""
        ...

    async def list_deliberations(self, role: str | None = None, status: Lifecycle | None = None, offset: int = 0,
                                 limit: int = 50) -> tuple[list[DeliberationState], int]:
        """(page, total matching): newest first, filtered by role (case-insensitive) and status."""
        ...

    async def events(self, deliberation_id: str, after: int = 0,
                     wait_s: float = 15.0) -> tuple[list[DeliberationEvent], bool]:
        """(events with seq > after, finished): waits up to `wait_s` for a first new one (a long poll;
        an empty list when none came). `NotFoundError` for an unknown id."""
        ...

    async def cancel(self, deliberation_id: str) -> DeliberationState:
        """Cancel the deliberation (queued or running) and return its state once it has stopped;
        `ConflictError` when it had ended already, `NotFoundError` for an unknown id."""
        ...

    async def plan_approved(self, event: PlanApproved) -> PlanDispatch:
        """One deliberation per role of the approved plan, started together; idempotent per
        `event_id` (a repeat starts nothing, except roles a full queue refused before). The answer is
        stored before it is returned (`StoreError` when it cannot be); a role that cannot start is a
        failed entry in the answer, not an error."""
        ...


if TYPE_CHECKING:  # both implementations conform, or the type checker fails here and names the member
    from fleet.coordinator.client import CoordinatorClient
    from fleet.coordinator.coordinator import Coordinator

    def _actor_conforms(actor: Coordinator) -> CoordinatorAPI:
        return actor

    def _client_conforms(client: CoordinatorClient) -> CoordinatorAPI:
        return client
