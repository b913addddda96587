"""Agents and councils: who deliberates, with which persona and sampling settings.

`CouncilSpec.default(role, num_agents)` builds the standard council: ids `agent-dev-001`..., one lens per
agent, distinct seeds and a spread of temperatures, so diversity comes from the agents themselves.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from fleet.config._base import StrictModel
from fleet.config.roles import LENSES, ROLE_PERSONAS, RoleName

MAX_AGENTS = 32
# Temperatures handed out in order; a council of 3 samples at 0.3 / 0.5 / 0.7 (higher ones made the
# embedded 135M model drift off-topic; larger models can take a wider spread via AgentSpec).
_TEMPERATURES = (0.3, 0.5, 0.7, 0.4, 0.6)


class Sampling(StrictModel):
    """Sampling settings of one agent (vLLM's names)."""

    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1, le=8192, description="completion budget per call")
    repetition_penalty: float = Field(default=1.1, gt=0.0, le=2.0, description="> 1 discourages loops")
    seed: int = Field(default=0, ge=0, description="base seed; each call derives its own from it")


class AgentSpec(StrictModel):
    """One agent: identity, persona and sampling. Immutable once its actor is created."""

    agent_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="e.g. agent-dev-001")
    role: RoleName
    persona: str = Field(min_length=1, max_length=4000, description="the role persona (system prompt)")
    lens: str = Field(default="", max_length=1000, description="what sets this agent apart")
    sampling: Sampling = Field(default_factory=Sampling)
    model: str | None = Field(default=None, description="engine model id; None: the fleet's default")


class CouncilSpec(StrictModel):
    """A council: agents of one role."""

    role: RoleName
    agents: list[AgentSpec] = Field(min_length=1, max_length=MAX_AGENTS)

    @model_validator(mode="after")
    def _consistent(self) -> CouncilSpec:
        ids = [a.agent_id for a in self.agents]
        if len(set(ids)) != len(ids):
            raise ValueError(f"agent ids in a council must be unique, got {ids}")
        wrong = [a.agent_id for a in self.agents if a.role != self.role]
        if wrong:
            raise ValueError(f"agents {wrong} are not of the council's role {self.role}")
        return self

    @classmethod
    def default(
        cls,
        role: str,
        num_agents: int = 3,
        *,
        persona: str | None = None,
        base_seed: int = 0,
        max_tokens: int = 256,
        model: str | None = None,
    ) -> CouncilSpec:
        """The standard council for `role`. A custom role (not DEV/QA/ARCHITECT/DEVOPS/DATA) must
        bring its `persona`.

        >>> [a.agent_id for a in CouncilSpec.default("qa", 2).agents]
        ['agent-qa-001', 'agent-qa-002']
        """
        role_name = role.strip().upper()
        if not 1 <= num_agents <= MAX_AGENTS:
            raise ValueError(f"num_agents must be between 1 and {MAX_AGENTS}, got {num_agents}")
        persona = persona or ROLE_PERSONAS.get(role_name)
        if persona is None:
            raise ValueError(
                f"role {role_name!r} is not one of {sorted(ROLE_PERSONAS)}: a custom role needs a persona"
            )
        agents = [
            AgentSpec(
                agent_id=f"agent-{role_name.lower().replace('_', '-')}-{i + 1:03d}",
                role=role_name,
                persona=persona,
                lens=LENSES[i % len(LENSES)],
                sampling=Sampling(
                    temperature=_TEMPERATURES[i % len(_TEMPERATURES)],
                    max_tokens=max_tokens,
                    seed=base_seed + 1000 * (i + 1),
                ),
                model=model,
            )
            for i in range(num_agents)
        ]
        return cls(role=role_name, agents=agents)


class NewAgent(StrictModel):
    """An agent to register into an existing council; unset fields take the council's defaults."""

    agent_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    persona: str | None = Field(default=None, min_length=1, max_length=4000)
    lens: str | None = Field(default=None, max_length=1000)
    sampling: Sampling | None = None
    model: str | None = None


class NewCouncil(StrictModel):
    """A council to create: the standard agents for `role`, or explicit `agents`."""

    role: RoleName
    num_agents: int = Field(default=3, ge=1, le=MAX_AGENTS)
    persona: str | None = Field(default=None, min_length=1, max_length=4000, description="needed for a custom role")
    agents: list[AgentSpec] | None = Field(default=None, description="explicit agents instead of num_agents")

    def build(self, max_tokens: int = 256) -> CouncilSpec:
        if self.agents is not None:
            return CouncilSpec(role=self.role, agents=self.agents)
        return CouncilSpec.default(self.role, self.num_agents, persona=self.persona, max_tokens=max_tokens)
