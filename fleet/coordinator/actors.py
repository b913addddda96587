"""The agents' actors: one `AgentActor` per agent, started on demand, warmed ahead, replaced when dead.

Each actor is placed beside an engine replica (the engine's placement resource) and is a child of the
coordinator: it dies with it and is made again on demand. An actor that dies mid-call is forgotten
(`ActorPool`'s `on_dead`) so the next deliberation that needs the agent gets a new one, and that
deliberation's record says so. What this file leaves out: which agents a council has (councils.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import ray

from fleet.agents.agent import AgentActor
from fleet.config.council import AgentSpec
from fleet.config.fleet import FleetConfig
from fleet.coordinator.pool import ActorPool
from fleet.engine.client import engine_client

log = logging.getLogger(__name__)


class AgentActors:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.actors: dict[str, tuple[AgentSpec, Any]] = {}  # agent_id -> (spec, actor handle)
        self.replaced: Counter[str] = Counter()  # agent_id -> actors that died and were replaced
        self._dead: set[str] = set()  # agents whose actor died since a deliberation last started them
        self._warming: set[asyncio.Task[None]] = set()

    def _actor(self, spec: AgentSpec) -> Any:
        have = self.actors.get(spec.agent_id)
        if have is not None and have[0] == spec:
            return have[1]
        self.drop(spec.agent_id)
        options: dict[str, Any] = {}
        engine = self.config.engine
        if engine.placement_resource and engine.kind != "inproc_fake":
            options["resources"] = {engine.placement_resource: 0.001}
        handle = AgentActor.options(**options).remote(spec, engine_client(engine), engine.model_id)
        self.actors[spec.agent_id] = (spec, handle)
        return handle

    def warm(self, agents: list[AgentSpec]) -> None:
        """Start these agents' actors now and connect them to the engine, in the background: the
        first deliberation then finds them running. A failure here is logged; the deliberation that
        needs the agent starts it again and records what happens."""
        members = {a.agent_id: a for a in agents}
        if not members:
            return

        async def warm() -> None:
            pool, _ = self.pool(list(members.values()))
            results = await asyncio.gather(
                *(asyncio.wait_for(pool.agent(a).ready(), self.config.deliberation.timeouts.call_s) for a in members),
                return_exceptions=True)
            failed = {a: r for a, r in zip(members, results, strict=True) if isinstance(r, BaseException)}
            log.info("warm agents: %d started%s", len(members) - len(failed), f", failed: {failed}" if failed else "")

        task = asyncio.get_running_loop().create_task(warm())
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    def _died(self, agent_id: str, handle: Any) -> None:
        """An agent's actor died: forget it (the next call gets a new one) unless already replaced."""
        have = self.actors.get(agent_id)
        if have is not None and have[1] is handle:
            del self.actors[agent_id]
            self._dead.add(agent_id)

    def pool(self, members: list[AgentSpec]) -> tuple[ActorPool, list[str]]:
        """The agents' actors (new ones for agents whose actor died), and which were replaced."""
        replaced = sorted(a.agent_id for a in members if a.agent_id in self._dead)
        pool = ActorPool({a.agent_id: self._actor(a) for a in members}, on_dead=self._died)
        for agent_id in replaced:
            self._dead.discard(agent_id)
            self.replaced[agent_id] += 1
        return pool, replaced

    def drop(self, agent_id: str) -> None:
        """Kill the agent's actor, if it has one (its agent left its council)."""
        have = self.actors.pop(agent_id, None)
        if have is not None:
            ray.kill(have[1])  # non-blocking

    async def nodes(self) -> dict[str, str]:
        """agent_id -> Ray node id, for every agent actor held (placement checks)."""
        ids = list(self.actors)
        nodes = await asyncio.wait_for(asyncio.gather(*(self.actors[a][1].ready.remote() for a in ids)),
                                       self.config.deliberation.timeouts.call_s)
        return dict(zip(ids, nodes, strict=True))
