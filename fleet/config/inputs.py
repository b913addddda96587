"""What a caller asks for, before defaults: the one input shape of the driver, HTTP and jobs.

`DeliberationInput.to_request(defaults)` turns it into the strict `DeliberationRequest` the
coordinator runs, so the three entry points validate and default identically.

>>> DeliberationInput(task="Add a cache", rounds=2).to_request(DeliberationConfig()).config.rounds
2
"""

from __future__ import annotations

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.config.council import MAX_AGENTS, CouncilSpec
from fleet.config.deliberation import MAX_ROUNDS, DeliberationConfig, DeliberationRequest, SamplingOverride, Topology
from fleet.config.roles import RoleName
from fleet.config.task import Task


class DeliberationInput(StrictModel):
    task: Task | str = Field(description="a Task, or just its description")
    role: RoleName = "DEV"
    num_agents: int | None = Field(default=None, ge=1, le=MAX_AGENTS)
    persona: str | None = Field(default=None, min_length=1, max_length=4000, description="for a custom role")
    council: CouncilSpec | None = None
    rounds: int | None = Field(default=None, ge=0, le=MAX_ROUNDS)
    topology: Topology | None = None
    k: int | None = Field(default=None, ge=1, le=64)
    quorum: int | None = Field(default=None, ge=1)
    judge: bool | None = None
    sampling: SamplingOverride | None = None

    def to_request(self, defaults: DeliberationConfig) -> DeliberationRequest:
        """Raises pydantic's ValidationError (callers turn it into InvalidRequestError)."""
        task = Task(description=self.task) if isinstance(self.task, str) else self.task
        if self.k is not None:
            task = Task.model_validate({**task.model_dump(), "k": self.k})
        overrides = {name: value for name in ("rounds", "topology", "quorum", "judge")
                     if (value := getattr(self, name)) is not None}
        config = DeliberationConfig.model_validate({**defaults.model_dump(), **overrides})
        return DeliberationRequest(task=task, role=self.role, num_agents=self.num_agents, persona=self.persona,
                                   council=self.council, sampling=self.sampling, config=config)
