"""The coordinator: a Ray actor that owns the councils, their agent actors, and runs deliberations.

Every way into fleet (driver script, CLI, job, HTTP) ends in `Coordinator.deliberate`. It resolves
the council, makes sure one `AgentActor` per agent exists (placed beside an engine replica through
the engine's placement resource), and drives a `Deliberation` over those actors. It keeps counts
for `status()`. What it leaves out: persistence (councils and counts live in this actor's memory).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import ray

from fleet.agents.agent import AgentActor
from fleet.config.council import AgentSpec, CouncilSpec
from fleet.config.deliberation import DeliberationRequest
from fleet.config.fleet import FleetConfig
from fleet.config.roles import is_builtin
from fleet.coordinator.deliberation import Deliberation, new_deliberation_id
from fleet.coordinator.pool import ActorPool
from fleet.engine.serve_llm import engine_client
from fleet.errors import ConflictError, DeliberationFailedError, NotFoundError
from fleet.record import DeliberationRecord
from fleet.scoring.judge import Judge
from fleet.scoring.scorer import RubricScorer


class Coordinator:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.engine = engine_client(config.engine)  # the judge's engine
        self.councils: dict[str, CouncilSpec] = {c.role: c for c in config.startup_councils()}
        self.actors: dict[str, tuple[AgentSpec, Any]] = {}  # agent_id -> (spec, actor handle)
        self.running: dict[str, asyncio.Task] = {}  # deliberation_id -> task
        self.counts: Counter[tuple[str, str]] = Counter()  # (role, status) -> deliberations

    async def ready(self) -> bool:
        await self.engine.warm_up()  # the judge's connection
        return True

    async def fleet_config(self) -> FleetConfig:
        return self.config

    # -- councils ------------------------------------------------------------------------------

    async def list_councils(self) -> list[CouncilSpec]:
        return list(self.councils.values())

    async def get_council(self, role: str) -> CouncilSpec:
        role = role.strip().upper()
        if role not in self.councils:
            raise NotFoundError(f"no council for role {role!r}; councils: {sorted(self.councils)}")
        return self.councils[role]

    async def create_council(self, spec: CouncilSpec) -> CouncilSpec:
        if spec.role in self.councils:
            raise ConflictError(f"a council for role {spec.role!r} exists already")
        self.councils[spec.role] = spec
        return spec

    async def delete_council(self, role: str) -> None:
        council = await self.get_council(role)
        del self.councils[council.role]
        for a in council.agents:
            self._drop_actor(a.agent_id)

    def resolve_council(self, req: DeliberationRequest) -> CouncilSpec:
        """The council a request runs with: explicit, registered (resized to num_agents), or default."""
        if req.council is not None:
            return req.council
        registered = self.councils.get(req.role)
        if registered is None and not (is_builtin(req.role) or req.persona):
            raise NotFoundError(
                f"no council for role {req.role!r} and no persona to build one; "
                f"known roles: {sorted(self.councils)}"
            )
        n = req.num_agents or (len(registered.agents) if registered else self.config.council_size)
        persona = req.persona or (registered.agents[0].persona if registered else None)
        default = CouncilSpec.default(req.role, n, persona=persona, max_tokens=self.config.max_tokens)
        if registered is None:
            return default
        # Keep the registered agents (custom personas included); extend with defaults when asked for more.
        kept = registered.agents[:n]
        taken = {a.agent_id for a in kept}
        extra = [a for a in default.agents if a.agent_id not in taken][: n - len(kept)]
        return CouncilSpec(role=req.role, agents=kept + extra)

    # -- agents --------------------------------------------------------------------------------

    def _actor(self, spec: AgentSpec) -> Any:
        have = self.actors.get(spec.agent_id)
        if have is not None and have[0] == spec:
            return have[1]
        self._drop_actor(spec.agent_id)
        options: dict[str, Any] = {}
        engine = self.config.engine
        if engine.placement_resource and engine.kind != "inproc_fake":
            options["resources"] = {engine.placement_resource: 0.001}
        handle = AgentActor.options(**options).remote(spec, engine_client(engine), engine.model_id)
        self.actors[spec.agent_id] = (spec, handle)
        return handle

    def _drop_actor(self, agent_id: str) -> None:
        have = self.actors.pop(agent_id, None)
        if have is not None:
            ray.kill(have[1])  # non-blocking

    async def agent_nodes(self) -> dict[str, str]:
        """agent_id -> Ray node id, for every agent actor this coordinator holds (placement checks)."""
        ids = list(self.actors)
        nodes = await asyncio.wait_for(asyncio.gather(*(self.actors[a][1].ready.remote() for a in ids)),
                                       self.config.deliberation.timeouts.call_s)
        return dict(zip(ids, nodes))

    # -- deliberations -------------------------------------------------------------------------

    async def deliberate(self, request: DeliberationRequest, deliberation_id: str | None = None) -> DeliberationRecord:
        """Run one deliberation to its end. Raises `DeliberationFailedError` (with the partial record)
        when the quorum is lost, `NotFoundError` for an unknown role."""
        council = self.resolve_council(request)
        pool = ActorPool({a.agent_id: self._actor(a) for a in council.agents})
        judge = (Judge(self.engine, self.config.engine.model_id, request.config.judge_max_tokens)
                 if request.config.judge else None)
        run = Deliberation(request, council, pool, RubricScorer(judge), deliberation_id or new_deliberation_id())
        did = run.record.deliberation_id
        self.running[did] = asyncio.current_task()  # type: ignore[assignment]
        try:
            record = await run.run()
        except DeliberationFailedError:
            self.counts[(council.role, "failed")] += 1
            raise
        except asyncio.CancelledError:
            self.counts[(council.role, "cancelled")] += 1
            raise
        finally:
            self.running.pop(did, None)
        self.counts[(council.role, record.status)] += 1
        return record

    async def cancel(self, deliberation_id: str) -> bool:
        task = self.running.get(deliberation_id)
        if task is None:
            return False
        task.cancel()
        return True

    async def status(self) -> dict[str, Any]:
        per_role: dict[str, dict[str, int]] = {}
        for (role, status), n in self.counts.items():
            per_role.setdefault(role, {})[status] = n
        return {
            "councils": {r: [a.agent_id for a in c.agents] for r, c in self.councils.items()},
            "in_flight": len(self.running),
            "total": sum(self.counts.values()),
            "per_role": per_role,
            "engine": {"kind": self.config.engine.kind, "model": self.config.engine.model_id},
        }


# num_cpus=0: the coordinator only awaits; the CPUs belong to the engines.
CoordinatorActor = ray.remote(num_cpus=0, max_restarts=0)(Coordinator)
