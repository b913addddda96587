"""The coordinator: a Ray actor that owns the councils, their agent actors, and every deliberation.

Every way into fleet (driver script, CLI, `ray job submit`, HTTP) ends here. This class only wires
the rooms a request passes through and serves their public methods:

    councils.py  council CRUD           actors.py    one AgentActor per agent (warm, replace dead)
    admission.py the door and slots     runs.py      submit, run, wait, events, cancel
    plans.py     plan dispatch          sampling.py  first drafts without deliberating
    recovery.py  state read back at start, unfinished runs resumed
    writer.py    every change written to the `StateStore` (state_store.py) in order, on one thread

What it leaves out: the deliberation itself (deliberation.py) and the HTTP/driver edges.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray

from fleet.config.council import AgentSpec, CouncilSpec, NewAgent
from fleet.config.deliberation import DeliberationRequest, SampleRequest
from fleet.config.fleet import FleetConfig
from fleet.coordinator import recovery, sampling
from fleet.coordinator.actors import AgentActors
from fleet.coordinator.admission import Admission
from fleet.coordinator.councils import CouncilAdmin, CouncilRegistry
from fleet.coordinator.metrics import FleetMetrics
from fleet.coordinator.plans import PlanDispatcher
from fleet.coordinator.runs import Runs
from fleet.coordinator.status import fleet_status
from fleet.coordinator.writer import StoreWriter, open_store
from fleet.engine.client import engine_client
from fleet.schemas.api import DeliberationEvent, DeliberationState, Lifecycle, PlanApproved, PlanDispatch
from fleet.schemas.record import DeliberationRecord, SampleResult


class Coordinator:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.engine = engine_client(config.engine)  # the judge's engine
        self.metrics = FleetMetrics()
        # Durable state: read once here (the constructor runs before any call), then written through on
        # one thread, in order. A failed write is counted and shown by status(), never dropped silently.
        self.store = StoreWriter(open_store(config.state_location()))
        snapshot, councils = recovery.load(self.store.store, self.store.errors, config)
        self.councils = CouncilRegistry(councils, config.council_size, config.max_tokens)
        self.agents = AgentActors(config)
        self.admin = CouncilAdmin(self.councils, self.agents, self.store)
        self.admission = Admission(config)
        self.runs = Runs(config, self.engine, self.councils, self.agents, self.admission, self.store, self.metrics)
        self.plans = PlanDispatcher(config, self.runs, self.store, snapshot.plans)
        try:  # a Ray async actor's constructor runs on its event loop: resumed runs can start now
            asyncio.get_running_loop()
            loop_running = True
        except RuntimeError:
            loop_running = False
        self.resumed = recovery.restore(snapshot, self.runs, self.store, loop_running)
        if loop_running:
            self.agents.warm([a for c in self.councils.councils.values() if c.role in config.warm_roles
                              for a in self.councils.members(c)])

    async def ready(self) -> bool:
        await self.engine.warm_up()  # the judge's connection
        return True

    async def fleet_config(self) -> FleetConfig:
        return self.config

    # -- councils and agents (councils.py, actors.py) -------------------------------------------

    async def list_councils(self) -> list[CouncilSpec]:
        return self.admin.list_councils()

    async def get_council(self, role: str) -> CouncilSpec:
        return self.councils.get(role)

    async def create_council(self, spec: CouncilSpec) -> CouncilSpec:
        return self.admin.create_council(spec)

    async def delete_council(self, role: str) -> None:
        self.admin.delete_council(role)

    async def add_agent(self, role: str, new: NewAgent) -> AgentSpec:
        return self.admin.add_agent(role, new)

    async def remove_agent(self, role: str, agent_id: str) -> None:
        self.admin.remove_agent(role, agent_id)

    async def agent_nodes(self) -> dict[str, str]:
        """agent_id -> Ray node id, for every agent actor this coordinator holds (placement checks)."""
        return await self.agents.nodes()

    # -- deliberations (runs.py, sampling.py, plans.py) -----------------------------------------

    async def submit(self, request: DeliberationRequest, deliberation_id: str | None = None) -> DeliberationState:
        """Start a deliberation in the background; returns its (queued) state at once. Refused before
        anything is stored: an unknown role (`NotFoundError`), a quorum larger than the council that
        would run or a prompt that can outgrow the engine's context window (`InvalidRequestError`), a
        full queue (`OverloadedError`)."""
        return await self.runs.submit(request, deliberation_id)

    async def run(self, request: DeliberationRequest, deliberation_id: str | None = None) -> DeliberationRecord:
        """Submit and wait: the record, or `DeliberationFailedError` (with the partial record)."""
        return await self.runs.run(request, deliberation_id)

    async def sample(self, request: SampleRequest) -> SampleResult:
        """`request.n` first drafts from the council's agents in turn, all at once (one deliberation
        slot). Each failed call is a failure in the result; none is retried or replaced."""
        return await sampling.sample(request, self.councils, self.agents, self.admission.slots)

    async def wait(self, deliberation_id: str, timeout_s: float) -> DeliberationState:
        """The state once the deliberation ends, or as it is after timeout_s."""
        return await self.runs.wait(deliberation_id, timeout_s)

    async def get_deliberation(self, deliberation_id: str) -> DeliberationState:
        return self.runs.get(deliberation_id).state

    async def list_deliberations(self, role: str | None = None, status: Lifecycle | None = None, offset: int = 0,
                                 limit: int = 50) -> tuple[list[DeliberationState], int]:
        """Newest first, filtered; returns (page, total matching)."""
        return self.runs.list(role, status, offset, limit)

    async def events(self, deliberation_id: str, after: int = 0,
                     wait_s: float = 15.0) -> tuple[list[DeliberationEvent], bool]:
        """Events with seq > after (long-polls up to wait_s); (events, finished)."""
        return await self.runs.get(deliberation_id).wait_events(after, wait_s)

    async def cancel(self, deliberation_id: str) -> DeliberationState:
        return await self.runs.cancel(deliberation_id)

    async def plan_approved(self, event: PlanApproved) -> PlanDispatch:
        """One deliberation per role, started together; the same event_id again starts nothing. The
        answer is in the store before it is returned (plans.py)."""
        return await self.plans.plan_approved(event)

    async def status(self) -> dict[str, Any]:
        return fleet_status(self.config, self.councils, self.runs, self.agents, self.admission, self.store,
                            self.resumed)


# num_cpus=0: the coordinator only awaits; the CPUs belong to the engines. max_restarts=-1: if its
# process dies, Ray starts it again (its constructor reloads the stored state, when there is one);
# calls in flight then fail (the driver says 503, retry) and later calls reach the new one. Its agent
# actors die with it (they are its children) and are made again on demand.
CoordinatorActor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(Coordinator)
