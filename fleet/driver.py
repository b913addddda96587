"""The driver API: `Fleet`, a client of a running fleet. Async, and safe to use from inside any
running event loop (web handlers, message consumers, notebooks).

    async with await Fleet.start() as fleet:          # local Ray + the embedded CPU engine
        record = await fleet.deliberate("Add rate limiting to the login endpoint", role="DEV")

`Fleet.start` / `Fleet.connect` bring the fleet up or find it (`fleet.bootstrap`); every other method
is a typed call on the coordinator (`CoordinatorAPI`: over Ray through `CoordinatorClient`, each call
under a timeout, fleet's errors as themselves). Two names to keep apart: `deliberate(task, ...)` builds
a request from loose arguments and awaits `run(request)`, the coordinator's `run`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from pydantic import ValidationError

from fleet import bootstrap
from fleet.bootstrap import RunningFleet
from fleet.config.council import AgentSpec, CouncilSpec, NewAgent
from fleet.config.deliberation import DeliberationConfig, DeliberationRequest, SampleRequest, SamplingOverride
from fleet.config.fleet import FleetConfig, RayOptions
from fleet.config.task import Task
from fleet.coordinator.api import CoordinatorAPI
from fleet.errors import InvalidRequestError, explain
from fleet.schemas.api import (
    DeliberationEvent,
    DeliberationInput,
    DeliberationState,
    Lifecycle,
    PlanApproved,
    PlanDispatch,
)
from fleet.schemas.record import DeliberationRecord, SampleResult

Topology = Literal["all_pairs", "ring"]


class Fleet:
    """A client of a running fleet: `api` is its coordinator, `config` the config it runs.

    Built by `start` / `connect` (then `shutdown` stops what this handle started), or around any
    `CoordinatorAPI`, e.g. an in-process `Coordinator` (then there is nothing to stop)."""

    def __init__(self, api: CoordinatorAPI, config: FleetConfig, running: RunningFleet | None = None) -> None:
        self.api, self.config = api, config
        self._running = running  # what bootstrap brought up or found (None: not a Ray-backed fleet)

    @classmethod
    async def start(cls, config: FleetConfig | None = None, *, ray_options: RayOptions | None = None,
                    deploy: bool = True, detached: bool = False, join: bool | None = None,
                    on_start: Callable[[FleetConfig], FleetConfig] | None = None) -> Fleet:
        """Connect to (or start) Ray, deploy the engine unless it runs (or `deploy=False`: the
        caller's Serve app hosts it), and start or reuse the named coordinator. `detached=True`
        keeps the coordinator alive beyond this process (Serve replicas use it).

        Without a config, a fleet that already runs (e.g. `serve run serve_configs/cpu.yaml`) is
        joined as it is; with one, a running coordinator of another config is a `ConflictError`
        (`join=True`: join a running one first, whatever its config). `ray_options` (address,
        namespace, ...) override the config's; `on_start` adjusts the config only when a fleet is
        started (`fleet.bootstrap.open_fleet`)."""
        running = await bootstrap.open_fleet(config, join=join, ray_options=ray_options, deploy=deploy,
                                             detached=detached, on_start=on_start)
        return cls(running.client, running.config, running)

    @classmethod
    async def connect(cls, config: FleetConfig | None = None) -> Fleet:
        """Attach to a fleet started elsewhere (same coordinator name): on the Ray at the given address,
        else on the Ray running on this machine. `EngineNotReadyError` when there is none."""
        running = await bootstrap.connect(config or FleetConfig())
        return cls(running.client, running.config, running)

    @property
    def coordinator(self) -> Any:
        """The coordinator actor's Ray handle (None: not a Ray-backed fleet). Calls go through `api`;
        this is for tools and tests that reach into the actor itself."""
        return self._running.client.handle if self._running else None

    @property
    def engine_ready_s(self) -> float:
        """Wall time `start` spent bringing the engine up."""
        return self._running.engine_ready_s if self._running else 0.0

    @property
    def owner(self) -> bool:
        """Whether this handle created the coordinator (and so `shutdown` stops it)."""
        return self._running is not None and self._running.owner

    @owner.setter
    def owner(self, value: bool) -> None:
        if self._running is not None:
            self._running.owner = value

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def shutdown(self, engine: bool = False) -> None:
        """Stop the coordinator (and its agents) if this handle started it; with `engine=True` also
        delete the engine app."""
        if self._running is not None:
            await self._running.shutdown(engine)

    # -- deliberations ---------------------------------------------------------------------------

    async def deliberate(
        self,
        task: Task | str,
        *,
        role: str = "DEV",
        num_agents: int | None = None,
        rounds: int | None = None,
        topology: Topology | None = None,
        k: int | None = None,
        persona: str | None = None,
        council: CouncilSpec | None = None,
        judge: bool | None = None,
        sampling: SamplingOverride | None = None,
        config: DeliberationConfig | None = None,
    ) -> DeliberationRecord:
        """Run one deliberation and return its record. Arguments left None take the fleet's defaults.
        Raises `InvalidRequestError` for bad input, `NotFoundError` for an unknown role,
        `DeliberationFailedError` (with `.record`) when the quorum is lost."""
        return await self.run(self.request(task, role=role, num_agents=num_agents, rounds=rounds, topology=topology,
                                           k=k, persona=persona, council=council, judge=judge, sampling=sampling,
                                           config=config))

    def request(self, task: Task | str, *, role: str = "DEV", num_agents: int | None = None, rounds: int | None = None,
                topology: Topology | None = None, k: int | None = None, persona: str | None = None,
                council: CouncilSpec | None = None, judge: bool | None = None,
                sampling: SamplingOverride | None = None, config: DeliberationConfig | None = None,
                ) -> DeliberationRequest:
        """A validated request with the fleet's defaults (what `deliberate` runs); `InvalidRequestError`."""
        try:
            return DeliberationInput(
                task=task, role=role, num_agents=num_agents, rounds=rounds, topology=topology, k=k,
                persona=persona, council=council, judge=judge, sampling=sampling,
            ).to_request(config or self.config.deliberation)
        except ValidationError as e:
            raise InvalidRequestError(explain(e.errors())) from e

    async def run(self, request: DeliberationRequest) -> DeliberationRecord:
        """Run a validated request on the coordinator and wait for its record (the one code path
        every entry point uses)."""
        return await self.api.run(request)

    async def sample(self, request: SampleRequest) -> SampleResult:
        """`request.n` independent first drafts (no review): the baselines of `fleet eval`."""
        return await self.api.sample(request)

    async def submit(self, request: DeliberationRequest) -> DeliberationState:
        """Start a validated request in the background; returns its queued state at once."""
        return await self.api.submit(request)

    async def wait(self, deliberation_id: str, timeout_s: float) -> DeliberationState:
        """The state once the deliberation ends (or as it is after timeout_s)."""
        return await self.api.wait(deliberation_id, timeout_s)

    async def get(self, deliberation_id: str) -> DeliberationState:
        return await self.api.get_deliberation(deliberation_id)

    async def list_deliberations(self, role: str | None = None, status: Lifecycle | None = None, offset: int = 0,
                                 limit: int = 50) -> tuple[list[DeliberationState], int]:
        return await self.api.list_deliberations(role, status, offset, limit)

    async def cancel(self, deliberation_id: str) -> DeliberationState:
        return await self.api.cancel(deliberation_id)

    async def events(self, deliberation_id: str, after: int = 0, wait_s: float = 15.0
                     ) -> AsyncIterator[DeliberationEvent | None]:
        """Every event with seq > after, then each new one as it happens, until the deliberation ends.
        Yields None after each `wait_s` without news (a caller's chance to send a keep-alive)."""
        while True:
            events, finished = await self.api.events(deliberation_id, after, wait_s)
            for event in events:
                after = event.seq
                yield event
            if finished and not events:
                return
            if not events:
                yield None

    async def plan_approved(self, event: PlanApproved) -> PlanDispatch:
        return await self.api.plan_approved(event)

    # -- councils and status ---------------------------------------------------------------------

    async def councils(self) -> list[CouncilSpec]:
        return await self.api.list_councils()

    async def council(self, role: str) -> CouncilSpec:
        return await self.api.get_council(role)

    async def create_council(self, spec: CouncilSpec) -> CouncilSpec:
        return await self.api.create_council(spec)

    async def delete_council(self, role: str) -> None:
        await self.api.delete_council(role)

    async def add_agent(self, role: str, new: NewAgent) -> AgentSpec:
        return await self.api.add_agent(role, new)

    async def remove_agent(self, role: str, agent_id: str) -> None:
        await self.api.remove_agent(role, agent_id)

    async def status(self) -> dict[str, Any]:
        return await self.api.status()
