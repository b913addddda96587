"""The councils: which exist, which agents a deliberation runs with, and changing them.

`CouncilRegistry` is pure bookkeeping on `CouncilSpec`s (no actors, no store): the coordinator owns
one and asks it to resolve each request. Resolution honours the request: an explicit council as given;
otherwise the registered council of the role, resized to `num_agents` (its own agents first, then
standard ones), with the request's sampling override applied to every agent. `CouncilAdmin` is the
coordinator's council CRUD: each change goes to the registry, then the store, then the agents' actors
(new agents warmed, removed ones' actors killed).
"""

from __future__ import annotations

from fleet.config.council import MAX_AGENTS, AgentSpec, CouncilSpec, NewAgent, Sampling
from fleet.config.deliberation import DeliberationRequest, SampleRequest
from fleet.config.roles import LENSES, ROLE_PERSONAS, is_builtin
from fleet.coordinator.actors import AgentActors
from fleet.coordinator.writer import StoreWriter
from fleet.errors import ConflictError, NotFoundError


class CouncilRegistry:
    def __init__(self, councils: list[CouncilSpec], council_size: int, max_tokens: int) -> None:
        self.councils: dict[str, CouncilSpec] = {c.role: c for c in councils}
        self.council_size, self.max_tokens = council_size, max_tokens

    def get(self, role: str) -> CouncilSpec:
        role = role.strip().upper()
        if role not in self.councils:
            raise NotFoundError(f"no council for role {role!r}; councils: {sorted(self.councils)}")
        return self.councils[role]

    def architect_for(self, council: CouncilSpec) -> AgentSpec:
        """Who selects the winner of `council`'s deliberation: the first agent of the ARCHITECT
        council that is not one of its authors, else a standing selector with the ARCHITECT persona."""
        authors = {a.agent_id for a in council.agents}
        registered = self.councils.get("ARCHITECT")
        for agent in registered.agents if registered else []:
            if agent.agent_id not in authors:
                return agent
        return AgentSpec(agent_id="agent-architect-selector", role="ARCHITECT", persona=ROLE_PERSONAS["ARCHITECT"],
                         lens="You choose what ships, and you trust test results over claims.",
                         sampling=Sampling(temperature=0.0, max_tokens=self.max_tokens, seed=7))

    def members(self, council: CouncilSpec) -> list[AgentSpec]:
        """The council's agents and the architect that selects for it."""
        return [*council.agents, self.architect_for(council)]

    def create(self, spec: CouncilSpec) -> CouncilSpec:
        if spec.role in self.councils:
            raise ConflictError(f"a council for role {spec.role!r} exists already")
        self.councils[spec.role] = spec
        return spec

    def delete(self, role: str) -> CouncilSpec:
        council = self.get(role)
        del self.councils[council.role]
        return council

    def add_agent(self, role: str, new: NewAgent) -> AgentSpec:
        council = self.get(role)
        if len(council.agents) >= MAX_AGENTS:
            raise ConflictError(f"council {council.role} is full ({MAX_AGENTS} agents)")
        n = len(council.agents)
        taken = {a.agent_id for a in council.agents}
        prefix, i = f"agent-{council.role.lower().replace('_', '-')}", n + 1
        while f"{prefix}-{i:03d}" in taken:
            i += 1
        agent_id = new.agent_id or f"{prefix}-{i:03d}"
        if agent_id in taken:
            raise ConflictError(f"agent {agent_id!r} is already in council {council.role}")
        template = council.agents[0]
        agent = AgentSpec(
            agent_id=agent_id, role=council.role, persona=new.persona or template.persona,
            lens=new.lens if new.lens is not None else LENSES[n % len(LENSES)],
            sampling=new.sampling or template.sampling.model_copy(update={"seed": template.sampling.seed + 1000 * n}),
            model=new.model if new.model is not None else template.model,
        )
        self.councils[council.role] = CouncilSpec(role=council.role, agents=[*council.agents, agent])
        return agent

    def remove_agent(self, role: str, agent_id: str) -> AgentSpec:
        council = self.get(role)
        keep = [a for a in council.agents if a.agent_id != agent_id]
        if len(keep) == len(council.agents):
            raise NotFoundError(f"no agent {agent_id!r} in council {council.role}")
        if not keep:
            raise ConflictError(f"{agent_id!r} is the last agent of {council.role}: delete the council instead")
        self.councils[council.role] = CouncilSpec(role=council.role, agents=keep)
        return next(a for a in council.agents if a.agent_id == agent_id)

    def resolve(self, req: DeliberationRequest | SampleRequest) -> CouncilSpec:
        return req.council or self._by_role(req)

    def _by_role(self, req: DeliberationRequest | SampleRequest) -> CouncilSpec:
        registered = self.councils.get(req.role)
        if registered is None and not (is_builtin(req.role) or req.persona):
            raise NotFoundError(
                f"no council for role {req.role!r} and no persona to build one; known roles: {sorted(self.councils)}"
            )
        n = req.num_agents or (len(registered.agents) if registered else self.council_size)
        persona = req.persona or (registered.agents[0].persona if registered else None)
        default = CouncilSpec.default(req.role, n, persona=persona, max_tokens=self.max_tokens)
        if registered is None:
            return default
        # Keep the registered agents (custom personas included); extend with defaults when asked for more.
        kept = registered.agents[:n]
        taken = {a.agent_id for a in kept}
        extra = [a for a in default.agents if a.agent_id not in taken][: n - len(kept)]
        return CouncilSpec(role=req.role, agents=kept + extra)


class CouncilAdmin:
    """Council CRUD as the coordinator serves it: registry first (it refuses what is wrong: unknown
    role, duplicate agent, ...), then the store, then the actors."""

    def __init__(self, registry: CouncilRegistry, agents: AgentActors, store: StoreWriter) -> None:
        self.registry, self.agents, self.store = registry, agents, store

    def list_councils(self) -> list[CouncilSpec]:
        return list(self.registry.councils.values())

    def create_council(self, spec: CouncilSpec) -> CouncilSpec:
        self.store.put_council(self.registry.create(spec))
        self.agents.warm(self.registry.members(spec))
        return spec

    def delete_council(self, role: str) -> None:
        council = self.registry.delete(role)
        self.store.delete_council(council.role)
        for a in council.agents:
            self.agents.drop(a.agent_id)

    def add_agent(self, role: str, new: NewAgent) -> AgentSpec:
        agent = self.registry.add_agent(role, new)
        self.store.put_council(self.registry.get(role))
        self.agents.warm([agent])
        return agent

    def remove_agent(self, role: str, agent_id: str) -> None:
        self.agents.drop(self.registry.remove_agent(role, agent_id).agent_id)
        self.store.put_council(self.registry.get(role))
